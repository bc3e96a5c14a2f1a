"""Permuted pixel MNIST: 784 steps under one fixed pixel permutation.

  python -m experiments.main --config=configs/permuted_mnist.py:indrnn \
      --workdir=runs/perm_mnist --config.data.permutation_seed=0

The permutation is saved as workdir/permutation.npy and reused on resume.
Variants (see configs/common/mnist.py): irnn, indrnn, res_indrnn, lstm, rnn,
each with an optional "_paper" suffix.

Measured on a 2-core CPU, float32, full test set (overrides in
docs/results.md); the IndRNN paper reports 96.0% with 6 layers:
  indrnn, num_steps=40000   90.99%  40,000 steps  54.1 min
"""

from configs.common import mnist as mnist_configs
from irnn_jax import sweeps


def get_config(variant: str = "indrnn"):
  return mnist_configs.mnist_config("permuted", variant)


def get_sweep(name: str = "indrnn"):
  """IRNN, IndRNN and LSTM; paper-sized if `name` ends in _paper."""
  suffix = "_paper" if name.endswith("_paper") else ""
  return sweeps.product(variant=[cell + suffix for cell in ("irnn", "indrnn", "lstm")])
