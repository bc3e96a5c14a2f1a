"""ReNet on MNIST: a conv stem, spatial RNN blocks, 1x1 conv and average pool.

  python -m experiments.main --config=configs/renet_mnist.py:indrnn \
      --workdir=runs/renet_mnist
  python -m experiments.predict --workdir=runs/renet_mnist --output=test.csv

Variants: indrnn (default), irnn, lstm, gru: the cell inside the spatial
blocks (sizes in configs/common/renet.py). Without suffix a CPU-sized run:
7000 steps of 64 (8 epochs), lr x0.1 after 5000. "_paper" trains the larger
model for 30 epochs. Images are the MNIST "image" view, [28, 28, 1];
--config.data.pad_to=32 zero-pads them, for patches larger than 1x1:
  --config.data.pad_to=32 --config.model.patch_sizes="(2, 1)"

Measured on a 2-core CPU, float32, full test set (docs/results.md):
  indrnn   99.33%  7,000 steps  17.4 min (cores shared)
"""

from configs.common import mnist as mnist_configs
from configs.common import renet as renet_configs
from irnn_jax import configlib


def get_config(variant: str = "indrnn"):
  cell, paper = configlib.split_variant(variant, renet_configs.CELLS, "ReNet MNIST")
  c = mnist_configs.data_config(configlib.base_config(), "image")
  renet_configs.model_config(c, cell, paper)
  c.data.batch_size = 64
  c.data.eval_batch_size = 500
  c.data.eval_examples = 0  # Whole splits: evaluation is cheap here.
  s, t = c.schedule, c.train
  s.name = "step"
  if paper:
    c.data.batch_size = 128
    t.num_steps = 30 * 430  # 30 epochs of the 55,000 training examples.
    s.decay_every, s.decay_factor = 10 * 430, 0.2
    t.log_every, t.eval_every, t.checkpoint_every = 100, 2150, 2150
  else:
    t.num_steps = 7000
    s.decay_every, s.decay_factor = 5000, 0.1
    t.log_every, t.eval_every, t.checkpoint_every = 100, 2000, 1000
  return c
