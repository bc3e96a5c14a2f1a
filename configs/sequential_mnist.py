"""Pixel-by-pixel MNIST: 784 steps of one pixel (IRNN paper 4.2, IndRNN paper 4.2).

  python -m experiments.main --config=configs/sequential_mnist.py:indrnn \
      --workdir=runs/seq_mnist

Variants (see configs/common/mnist.py): irnn, indrnn, res_indrnn, lstm, rnn,
each with an optional "_paper" suffix for the paper-sized budget.
The data: the four IDX files in --config.data.dir (default ../shared/data/mnist)
or the TFDS mnist data set (--config.data.source=tfds).
"""

from configs.common import mnist as mnist_configs
from irnn_jax import sweeps


def get_config(variant: str = "indrnn"):
  return mnist_configs.mnist_config("pixels", variant)


def get_sweep(name: str = "indrnn"):
  """IRNN, IndRNN and LSTM; paper-sized if `name` ends in _paper."""
  suffix = "_paper" if name.endswith("_paper") else ""
  return sweeps.product(variant=[cell + suffix for cell in ("irnn", "indrnn", "lstm")])
