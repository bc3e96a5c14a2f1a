"""MNIST in patches: 784 / k steps of k consecutive pixels (k = 7: 112 steps).

  python -m experiments.main --config=configs/mnist_patches.py:rnn \
      --workdir=runs/mnist_patches --config.data.patch_size=4

data.seq_len follows data.patch_size. The default variant, rnn, is a tanh RNN
of 128 units trained with RMSprop 2e-4; the others (irnn, indrnn, res_indrnn,
lstm) are as in configs/common/mnist.py. "_paper" gives the long budget.
No run of this file has been measured yet.
"""

from configs.common import mnist as mnist_configs


def get_config(variant: str = "rnn"):
  c = mnist_configs.mnist_config("patches", variant)
  if c.model.cell == "rnn":
    c.optimizer.name = "rmsprop"
    c.optimizer.learning_rate = 2e-4
  return c
