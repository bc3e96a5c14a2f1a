"""Permuted pixel MNIST: 784 steps under one fixed pixel permutation.

  python -m experiments.main --config=configs/permuted_mnist.py:indrnn \
      --workdir=runs/perm_mnist --config.data.permutation_seed=0

The permutation is saved as workdir/permutation.npy and reused on resume.
Variants (see irnn_jax/mnist_configs.py): irnn, indrnn, res_indrnn, lstm, rnn,
each with an optional "_paper" suffix.
"""

from irnn_jax import mnist_configs


def get_config(variant: str = "indrnn"):
  return mnist_configs.mnist_config("permuted", variant)
