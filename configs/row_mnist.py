"""Row-by-row MNIST: 28 steps of one 28-pixel row.

  python -m experiments.main --config=configs/row_mnist.py:indrnn --workdir=runs/row_mnist

Variants (see configs/common/mnist.py): irnn, indrnn, res_indrnn, lstm, rnn,
each with an optional "_paper" suffix. The IndRNN bound is 2^(1/28) here.

Measured on a 2-core CPU, float32, full test set (docs/results.md has the
exact overrides, learning rates and schedules):
  indrnn                  98.66%  10,000 steps  3.1 min
  irnn, hidden_size=256   98.63%  15,000 steps  3.6 min
  irnn                    97.62%  12,000 steps  1.0 min
"""

from configs.common import mnist as mnist_configs


def get_config(variant: str = "indrnn"):
  return mnist_configs.mnist_config("rows", variant)
