"""MinPy's RNN-on-MNIST tutorial: 112 steps of 7 pixels, a tanh RNN with identity recurrence.

Reference: the "RNN on MNIST" tutorial of MinPy (dmlc/minpy,
examples/tutorials/rnn_mnist.ipynb). Its setting, which the default variant
`reference` copies: each image as 112 steps of 7 consecutive pixels, the
first 5,000 training and the first 1,000 test images, pixels standardised per
pixel; a tanh RNN of 128 units, recurrent matrix the identity, zero bias,
initial state zero, softmax readout of the last step; inputs and readout
drawn as MinPy's "xavier" (N(0, 6 / (fan_in + fan_out))); RMSprop lr 2e-4
(decay 0.99, eps 1e-8 outside the square root), batch 50, 100 epochs, the
1,000 test images evaluated after every epoch (MinPy calls them validation).

  python -m experiments.main --config=configs/minpy_mnist.py --workdir=runs/minpy

Where ours differs: the readout is flax's Dense (LeCun normal kernel, zero
bias) where MinPy draws kernel and bias from its xavier normal; the per-pixel
std is floored at 1e-5 (MinPy adds 1e-5) and is taken over the 5,000 training
images (MinPy: all 60,000).

Variants, the tutorial's suggested exercises: lstm, gru (the cell in place of
the RNN); raw (no input normalisation: pixels in [0, 1]); lr1e-3 (RMSprop
1e-3); l2 (an L2 penalty of 1e-4 on the weight matrices).

Measured at commits a3ef797 and 8c18864 (the same code for this model), one core
each, float32 (docs/reproduction.md):
  reference, seeds 0-2   0.759 +- 0.019 test accuracy  100 epochs  2.5-2.7 min
                         (MinPy: 0.906 at epoch 50; ours 0.71 there)
  raw, seed 0             0.771 (best epoch 0.856)       100 epochs  2.9 min
  lr1e-3, seed 0          0.394                          100 epochs  2.9 min
  l2, seed 0              0.780                          100 epochs  3.2 min
  gru, seed 0             0.793 (best epoch 0.802)       100 epochs  8.5 min (shared)
  lstm, seed 0            0.817 (best epoch 0.84)        100 epochs  8.0 min (shared)
  (gru at commit 762c460, lstm at 1483fa8)
"""

import math

from configs.common import mnist as mnist_configs
from irnn_jax import configlib

VARIANTS = ("reference", "lstm", "gru", "raw", "lr1e-3", "l2")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def xavier_std(fan_in: int, fan_out: int) -> float:
  """MinPy's "xavier": a normal whose std is sqrt(6 / (fan_in + fan_out))."""
  return math.sqrt(6.0 / (fan_in + fan_out))


def get_config(variant: str = "reference"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown MinPy variant {variant!r}; choose from {VARIANTS}")
  c = mnist_configs.data_config(configlib.base_config(), "patches")
  d = c.data
  d.patch_size = 7
  d.train_examples = 5000
  d.validation_size = 0  # MinPy validates on the test images.
  d.eval_examples = 1000  # The first 1,000 test images.
  d.batch_size = 50
  d.normalize = "unit" if variant == "raw" else "standardize"
  d.min_std = 1e-5  # MinPy divides by std + 1e-5.

  m = c.model
  m.cell = variant if variant in ("lstm", "gru") else "rnn"
  m.num_layers, m.hidden_size = 1, 128
  m.input_init = "normal"
  m.input_std = xavier_std(d.patch_size, GATES[m.cell] * m.hidden_size)
  if m.cell == "rnn":
    m.cells.rnn.recurrent_init = "identity"

  o = c.optimizer
  o.name = "rmsprop"
  o.learning_rate = 1e-3 if variant == "lr1e-3" else 2e-4
  o.rmsprop_decay, o.eps, o.rmsprop_eps_in_sqrt = 0.99, 1e-8, False
  o.weight_decay = 1e-4 if variant == "l2" else 0.0

  t = c.train
  t.num_epochs = 100  # 100 steps an epoch: 10,000 steps.
  t.log_every, t.eval_every, t.checkpoint_every = 20, 100, 1000
  t.select_metric = ""  # No validation split to select on.
  return c
