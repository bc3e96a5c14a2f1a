"""Row-by-row MNIST: 28 steps of one 28-pixel row.

  python -m experiments.main --config=configs/row_mnist.py:indrnn --workdir=runs/row_mnist

Variants (see configs/common/mnist.py): irnn, indrnn, res_indrnn, lstm, rnn,
each with an optional "_paper" suffix. The IndRNN bound is 2^(1/28) here.
"""

from configs.common import mnist as mnist_configs


def get_config(variant: str = "indrnn"):
  return mnist_configs.mnist_config("rows", variant)
