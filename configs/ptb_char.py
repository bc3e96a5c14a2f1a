"""Character-level Penn Treebank (IndRNN paper 4.4): bits per character.

First write the character files from the word-level ones (once):
  python ../shared/data/ptb/make_char_files.py ../shared/data/ptb_char
then
  python -m experiments.main --config=configs/ptb_char.py:indrnn --workdir=runs/ptb_char
  python -m experiments.sample --workdir=runs/ptb_char --length=500 --prime="the "

Variants (see irnn_jax/ptb_configs.py): indrnn (default: 3 x 512, T = 100,
batch 32 at CPU size; 6 x 2000, T = 50, batch 128 with _paper), res_indrnn,
dense_indrnn, lstm; "_paper" for the paper's sizes. --config.data.dir points
elsewhere; --config.data.seq_len=150 is the paper's longer window.
Metrics: valid/bpc and test/bpc (loss / ln 2).
"""

from irnn_jax import ptb_configs


def get_config(variant: str = "indrnn"):
  return ptb_configs.ptb_config("char", variant)
