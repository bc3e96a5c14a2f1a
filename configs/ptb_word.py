"""Word-level Penn Treebank (10,000 words): perplexity.

  python -m experiments.main --config=configs/ptb_word.py:res_indrnn --workdir=runs/ptb_word
  python -m experiments.sample --workdir=runs/ptb_word --length=100 --prime="the company"

Reads ptb.{train,valid,test}.txt from --config.data.dir (default
../shared/data/ptb). Variants (see configs/common/ptb.py): indrnn (default:
3 x 256, T = 35, batch 32 at CPU size), res_indrnn (paper: 11 x 2000,
embedding 600, T = 50, batch 128 with _paper), dense_indrnn, lstm.
model.embed_size sets the embedding width (0 = hidden_size).
Metrics: valid/perplexity and test/perplexity (exp of the loss per word).

Measured on a 2-core CPU, float32 (overrides in docs/results.md):
  indrnn, time_budget_minutes=57   test perplexity 145.9  6,051 steps  58.1 min (shared)
"""

from configs.common import ptb as ptb_configs


def get_config(variant: str = "indrnn"):
  return ptb_configs.ptb_config("word", variant)
