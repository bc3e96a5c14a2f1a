"""ReNet on any TFDS image classification set prepared on this machine.

  python -m experiments.main --config=configs/renet_tfds.py:cifar10 \
      --workdir=runs/renet_cifar10 --config.data.tfds_data_dir=/path/to/tfds

The variant is the TFDS name; the data must be prepared in the array_record
format (see irnn_jax/data/tfds_images.py); nothing is downloaded. The model is
the CPU-sized IndRNN ReNet of configs/common/renet.py (--config.model.cell=
irnn | lstm | gru to change the cell); 20 epochs of 45,000 images at batch 64
for CIFAR-10, lr x0.1 after 14. Images are standardised per channel.
No run of this file has been measured yet (no TFDS data set is prepared here).
"""

from configs.common import renet as renet_configs
from irnn_jax import configlib


def get_config(variant: str = "cifar10"):
  c = configlib.base_config()
  d = c.data
  d.name, d.tfds_name, d.normalize = "tfds_image", variant, "standardize"  # Per channel.
  d.seq_len = 0  # The image height.
  d.batch_size, d.eval_examples = 64, 0
  renet_configs.model_config(c, "indrnn", paper=False)
  c.data.batch_size = 64
  c.schedule.name = "step"
  c.schedule.decay_every, c.schedule.decay_factor = 14 * 700, 0.1
  t = c.train
  t.num_steps = 20 * 700
  t.log_every, t.eval_every, t.checkpoint_every = 100, 2100, 700
  return c
