"""Pixel-by-pixel MNIST: 784 steps of one pixel (IRNN paper 4.2, IndRNN paper 4.2).

  python -m experiments.main --config=configs/sequential_mnist.py:indrnn \
      --workdir=runs/seq_mnist

Variants (see configs/common/mnist.py): irnn, indrnn, res_indrnn, lstm, rnn,
each with an optional "_paper" suffix for the paper-sized budget; and
indrnn_authors_u, the indrnn preset with the IndRNN authors' u (MAG 5, the last
layer's u from U(MAG^(-1/T), MAG^(1/T))); sweep u_init compares the two.
The data: the four IDX files in --config.data.dir (default ../shared/data/mnist)
or the TFDS mnist data set (--config.data.source=tfds).

Measured on a 2-core CPU, float32, full test set (overrides and curves in
docs/results.md); the papers report 99.0% (IndRNN, 6 layers) and 97% (IRNN):
  indrnn, num_steps=40000   98.39%  40,000 steps  56.3 min
  irnn, 58-minute budget    81.85%  61,857 steps  58.5 min (one core)
Sweep u_init at commit 1483fa8, 1,000 steps, first 2,000 test images, one core,
seeds 0, 1, 2 (docs/reproduction.md):
  indrnn                    0.762 +- 0.021   4.5-5.8 min a run
  indrnn_authors_u          0.901 +- 0.008   4.2-5.5 min a run
"""

from configs.common import mnist as mnist_configs
from irnn_jax import sweeps


AUTHORS_U = "indrnn_authors_u"


def get_config(variant: str = "indrnn"):
  if variant.removesuffix("_paper") == AUTHORS_U:
    # The IndRNN authors' u: MAG 5, the last layer's u from U(5^(-1/T), 5^(1/T)).
    c = mnist_configs.mnist_config("pixels", variant.replace(AUTHORS_U, "indrnn"))
    c.model.cells.indrnn.max_magnitude = 5.0
    c.model.cells.indrnn.last_layer_u = "mag_range"
    return c
  return mnist_configs.mnist_config("pixels", variant)


def get_sweep(name: str = "indrnn"):
  """IRNN, IndRNN and LSTM; paper-sized if `name` ends in _paper; u_init: the
  indrnn preset against indrnn_authors_u, seeds 0, 1, 2."""
  if name == "u_init":
    return sweeps.over_seeds(sweeps.product(variant=("indrnn", AUTHORS_U)), (0, 1, 2))
  suffix = "_paper" if name.endswith("_paper") else ""
  return sweeps.product(variant=[cell + suffix for cell in ("irnn", "indrnn", "lstm")])
