"""Spatial RNNs (ReNet, Visin et al. 2015): recurrent sweeps over a feature map.

A `SpatialRNN` block splits x[B, H, W, C] into non-overlapping ph x pw patches
(grid[B, H/ph, W/pw, ph*pw*C]), sweeps a bidirectional recurrent layer down
every column of patches, then another along every row of the result:
[B, H/ph, W/pw, 2*hidden]. All columns (rows) run as one batch of sequences.
`ReNetClassifier` puts blocks after a small conv stem, for images.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from irnn_jax import parallel
from irnn_jax.cells import RecurrentCellBase
from irnn_jax.layers import BN_MOMENTUM, RecurrentLayer, constrain_directions


def split_patches(x, ph: int, pw: int):
  """x[B, H, W, C] -> grid[B, H/ph, W/pw, ph*pw*C]; a patch is flattened in
  (row, column, channel) order."""
  b, h, w, c = x.shape
  if h % ph or w % pw:
    raise ValueError(f"a {h}x{w} feature map does not split into {ph}x{pw} patches;"
                     " pad the images (config.data.pad_to) or change the patch sizes")
  x = x.reshape(b, h // ph, ph, w // pw, pw, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // ph, w // pw, ph * pw * c)


def merge_patches(grid, ph: int, pw: int):
  """grid[B, H/ph, W/pw, ph*pw*C] -> x[B, H, W, C], the inverse of split_patches."""
  b, gh, gw, f = grid.shape
  c = f // (ph * pw)
  x = grid.reshape(b, gh, gw, ph, pw, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, gh * ph, gw * pw, c)


def columns_to_sequences(grid):
  """grid[B, H, W, F] -> seq[H, B*W, F]: each column is a time-major sequence."""
  b, h, w, f = grid.shape
  return grid.transpose(1, 0, 2, 3).reshape(h, b * w, f)


def sequences_to_columns(seq, batch: int):
  """seq[H, B*W, F] -> grid[B, H, W, F], the inverse of columns_to_sequences."""
  h, bw, f = seq.shape
  return seq.reshape(h, batch, bw // batch, f).transpose(1, 0, 2, 3)


def rows_to_sequences(grid):
  """grid[B, H, W, F] -> seq[W, B*H, F]: each row is a time-major sequence."""
  b, h, w, f = grid.shape
  return grid.transpose(2, 0, 1, 3).reshape(w, b * h, f)


def sequences_to_rows(seq, batch: int):
  """seq[W, B*H, F] -> grid[B, H, W, F], the inverse of rows_to_sequences."""
  w, bh, f = seq.shape
  return seq.reshape(w, batch, bh // batch, f).transpose(1, 2, 0, 3)


class SpatialRNN(nn.Module):
  """x[B, H, W, C] -> [B, H/ph, W/pw, 2*hidden]: a vertical bidirectional sweep
  over the patch columns, then a horizontal one over the rows of its output.
  Both sweeps use copies of `cell`; `norm`, `norm_position` as in RecurrentLayer."""
  cell: RecurrentCellBase
  patch: tuple[int, int] = (2, 2)
  norm: str = "none"
  norm_position: str = "post"

  def _layer(self, name: str) -> RecurrentLayer:
    return RecurrentLayer(self.cell, self.norm, self.norm_position, bidirectional=True,
                          time_major=True, name=name)

  @nn.compact
  def __call__(self, x, *, train: bool):
    batch = x.shape[0]
    grid = split_patches(x, *self.patch)
    h = self._layer("vertical")(columns_to_sequences(grid), train=train)
    grid = sequences_to_columns(h, batch)
    h = self._layer("horizontal")(rows_to_sequences(grid), train=train)
    return sequences_to_rows(h, batch)


def max_pool(x, stride: int, window: int = 0, padding: int = 0):
  """x[B, H, W, C] -> max over window x window (0: stride) patches taken every
  `stride` pixels, after `padding` pixels of -inf on each side."""
  window = window or stride
  return nn.max_pool(x, (window, window), strides=(stride, stride),
                     padding=((padding, padding), (padding, padding)))


CONV_ORDERS = ("norm_relu", "relu_norm")
CONV_INITS = ("lecun", "kaiming")
CLASSIFIER_ACTIVATIONS = ("none", "relu")


class ReNetClassifier(nn.Module):
  """images[B, H, W, C] -> (logits[B, num_classes], ()).

  Stem (after a batch norm of the images with `input_norm`): per entry of
  `conv_channels`, a k x k conv with dilation `conv_dilation` and "same"
  padding, then batch norm and relu (`conv_order` "norm_relu", no conv bias)
  or relu and batch norm ("relu_norm", a zero-initialised bias), then a max-pool
  of stride `pool` over a `pool_window` window (0: the stride) with
  `pool_padding` on each side; `pool_last_conv=False` leaves the last conv
  unpooled. Then one SpatialRNN per entry of `cells` (with the patch of
  `patches`), each followed by dropout and batch norm; a 1x1 conv to the
  classes (zero-padded by `classifier_padding`, then `classifier_activation`)
  and a global average pool.
  """
  cells: Sequence[RecurrentCellBase]
  patches: Sequence[tuple[int, int]]
  num_classes: int
  conv_channels: Sequence[int] = (32,)
  conv_kernel: int = 3
  conv_dilation: int = 1
  conv_order: str = "norm_relu"
  conv_init: str = "lecun"  # lecun: N(0, 1/fan_in) truncated (flax) | kaiming: N(0, 2/fan_in)
  input_norm: bool = False
  pool: int = 2
  pool_window: int = 0
  pool_padding: int = 0
  pool_last_conv: bool = True
  classifier_padding: int = 0
  classifier_activation: str = "none"
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0

  def _conv_init(self):
    if self.conv_init == "kaiming":
      return nn.initializers.variance_scaling(2.0, "fan_in", "normal")
    if self.conv_init == "lecun":
      return nn.initializers.lecun_normal()
    raise ValueError(f"config.model.conv_init: unknown value {self.conv_init!r}; "
                     f"choose from {CONV_INITS}")

  @nn.compact
  def __call__(self, images, states=None, *, seq_lengths=None, train: bool):
    del states  # No state is carried between batches.
    if seq_lengths is not None:
      raise ValueError("ReNetClassifier reads whole images: seq_lengths must be None")
    axis = parallel.DATA_AXIS if parallel.mapped_over_data() else None
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                                   axis_name=axis, name=name)
    x = bn("input_norm")(images) if self.input_norm else images
    for i, channels in enumerate(self.conv_channels):
      relu_first = self.conv_order == "relu_norm"
      x = nn.Conv(channels, (self.conv_kernel,) * 2, kernel_dilation=self.conv_dilation,
                  use_bias=relu_first, kernel_init=self._conv_init(),
                  name=f"conv_{i}")(x)
      if relu_first:
        x = bn(f"conv_{i}_norm")(nn.relu(x))
      else:
        x = nn.relu(bn(f"conv_{i}_norm")(x))
      last = i == len(self.conv_channels) - 1
      if self.pool > 1 and (self.pool_last_conv or not last):
        x = max_pool(x, self.pool, self.pool_window, self.pool_padding)
    for i, (cell, patch) in enumerate(zip(self.cells, self.patches)):
      x = SpatialRNN(cell, tuple(patch), self.norm, self.norm_position,
                     name=f"renet_{i}")(x, train=train)
      if self.dropout > 0:
        x = nn.Dropout(self.dropout)(x, deterministic=not train)
      x = bn(f"renet_{i}_norm")(x)
    if self.classifier_padding:
      pad = self.classifier_padding
      x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    x = nn.Conv(self.num_classes, (1, 1), name="classifier")(x)
    if self.classifier_activation == "relu":
      x = nn.relu(x)
    return jnp.mean(x, axis=(1, 2)), ()

  @nn.nowrap
  def constrain(self, params: dict) -> dict:
    """Every cell's `constrain` on its parameters (after an optimizer update)."""
    params = dict(params)
    for i, cell in enumerate(self.cells):
      block = dict(params[f"renet_{i}"])
      for sweep in ("vertical", "horizontal"):
        block[sweep] = constrain_directions(cell, block[sweep])
      params[f"renet_{i}"] = block
    return params
