"""Character-level Penn Treebank (IndRNN paper 4.4): bits per character.

config.data.dir holds ptb.char.{train,valid,test}.txt, or only the word-level
files, which are then spelled out into the same characters in memory:
  python -m experiments.main --config=configs/ptb_char.py:indrnn --workdir=runs/ptb_char
  python -m experiments.sample --workdir=runs/ptb_char --length=500 --prime="the "

Variants (see configs/common/ptb.py): indrnn (default: 3 x 512, T = 100,
batch 32 at CPU size; 6 x 2000, T = 50, batch 128 with _paper), res_indrnn,
dense_indrnn, lstm; "_paper" for the paper's sizes. --config.data.dir points
elsewhere; --config.data.seq_len=150 is the paper's longer window.
Metrics: valid/bpc and test/bpc (loss / ln 2).

Measured on a 2-core CPU, float32 (docs/results.md); the IndRNN paper reports
1.26 BPC with 6 x 2000 at T=50:
  indrnn, time_budget_minutes=57   test 1.521 BPC  34,000 steps  55.6 min
"""

from configs.common import ptb as ptb_configs


def get_config(variant: str = "indrnn"):
  return ptb_configs.ptb_config("char", variant)
