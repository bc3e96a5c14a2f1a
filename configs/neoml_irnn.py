"""NeoML's IRNN tutorial: pixel MNIST with a 100-unit IRNN and Adam 1e-6, on one thread.

Reference: the IRNN sample of NeoML (neoml-lib/neoml, its Python IRNN tutorial).
Its setting, which the default variant `reference` copies: 784 steps of one
pixel, pixels mapped as x -> (255 - x) * 2 / 255 - 1 (inverted, in [-1, 1]);
IRNN of 100 units, identity scale 1, input weights N(0, 1e-3), a fully
connected readout of the last step, cross-entropy; Adam lr 1e-6 (b1 0.9,
b2 0.999), gradient norm clipped to 1, no regularisation; batch 40, 200
epochs of the 60,000 training images (1,500 steps an epoch), the 10,000 test
images after every epoch; one CPU thread. They report test accuracy 0.9050
after 3 h 54 min, about 70 s an epoch.

  taskset -c 1 env XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
      python -m experiments.main --config=configs/neoml_irnn.py --workdir=runs/neoml_irnn

Where ours differs: NeoML feeds the training images in the same order every
epoch; we draw a new order each epoch. Adam's epsilon is NeoML's default in
the tutorial (not set there); ours is optax's 1e-8.

Variant `ours`: our 6 x 128 IndRNN with batch norm (configs/common/mnist.py)
on the same inputs, Adam 5e-4, 4,000 steps of 32, evaluated on the whole test
set every 1,000 steps.

Measured on a 2-core CPU, float32 (docs/reproduction.md):
  reference, one core, 60-minute budget, commit 7c044d9:
      0.8229 test accuracy after 59.4 epochs (89,153 steps) in 60.1 min,
      60.7 s an epoch with the test evaluation (NeoML: about 70 s)
  ours, one core, commit 65f19ff (the config's 4,000 steps): 0.9079 test
      accuracy after 4,000 steps in 20.2 min (0.8311 / 0.8617 / 0.8841 at
      steps 1,000 / 2,000 / 3,000), evaluations included
"""

from configs.common import mnist as mnist_configs

VARIANTS = ("reference", "ours")


def get_config(variant: str = "reference"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown NeoML variant {variant!r}; choose from {VARIANTS}")
  if variant == "ours":
    c = mnist_configs.mnist_config("pixels", "indrnn")
    c.data.normalize = "inverted"
    c.data.eval_examples = 0
    c.optimizer.learning_rate = 5e-4
    t = c.train
    t.num_steps, t.log_every, t.eval_every, t.checkpoint_every = 4000, 100, 1000, 1000
    return c
  c = mnist_configs.mnist_config("pixels", "irnn")
  d = c.data
  d.normalize = "inverted"
  d.batch_size = 40
  d.validation_size = 0  # All 60,000 training images; the test set is the only evaluation.
  d.eval_examples = 0
  o = c.optimizer
  o.name, o.learning_rate, o.b1, o.b2, o.clip_global_norm = "adam", 1e-6, 0.9, 0.999, 1.0
  t = c.train
  t.num_epochs = 200
  t.log_every, t.eval_every, t.checkpoint_every = 100, 1500, 1500  # Test after every epoch.
  t.select_metric = ""  # No validation split to select on.
  return c
