"""Models: stacks of recurrent layers (plain, residual, dense) with a readout,
and the ReNet image classifier (spatial.py); `build_model` picks one by
config.model.arch."""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from irnn_jax import cells, recurrences, spatial
from irnn_jax.cells import RecurrentCellBase
from irnn_jax.layers import (PendingNorm, RecurrentLayer, can_fold_norm, check_lengths,
                             constrain_directions, training_flag)

ARCHS = ("recurrent", "renet")
CONNECTIONS = ("plain", "residual", "dense")
READOUTS = ("last", "all")
POOLINGS = ("last", "mean")


class RecurrentStack(nn.Module):
  """Recurrent layers over x[B, T, D] (`time_major`: [T, B, D]) -> h[B, T, F];
  `cells` has one unbound cell per recurrent layer, in the order they are
  applied, each a `RecurrentLayer` with the stack's norm, dropout and
  direction. `seq_lengths[B]` as in RecurrentLayer; `return_carry` returns
  (carry, h), the carry a tuple with each layer's carry (`initial_carry`
  takes the same).

  plain:    h = layer_n(...layer_1(x)).
  residual: layer 1 maps D -> H; then blocks of `block_size` layers, each
            block's input added to its output (identity shortcut).
  dense:    layer 1 maps D -> H; then blocks of `block_size` layers where each
            layer reads the concatenation of the block input and all earlier
            outputs of the block; between blocks a transition layer maps that
            concatenation back to H. The last block's concatenation is output.

  In a plain stack with batch norm "sequence"/"post" and no dropout, each
  layer leaves its norm to the next layer's input projection (`PendingNorm`);
  `fold_norm=False` turns this off. With `defer_norm` (time-major only) the
  stack returns the last layer's output as a PendingNorm too.
  """
  cells: tuple[RecurrentCellBase, ...]
  connection: str = "plain"
  block_size: int = 2
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0
  bidirectional: bool = False
  fold_norm: bool = True
  return_carry: bool = False
  time_major: bool = False

  def _layer(self, index: int) -> RecurrentLayer:
    return RecurrentLayer(self.cells[index], self.norm, self.norm_position,
                          self.dropout, self.bidirectional, return_carry=True,
                          time_major=True, name=f"layer_{index}")

  @nn.compact
  def __call__(self, x, initial_carry: Any = None, *, seq_lengths=None, train=None,
               defer_norm: bool = False):
    train = training_flag(train, self.norm, self.dropout, "RecurrentStack")
    if not self.time_major:
      if defer_norm:
        raise ValueError("RecurrentStack: defer_norm needs time_major=True")
      x = jnp.swapaxes(x, 0, 1)
    lengths = check_lengths(seq_lengths, (x[0] if isinstance(x, PendingNorm) else x).shape[:2],
                            "RecurrentStack")
    states = initial_carry or (None,) * len(self.cells)
    finals = []

    def run(index, inputs, defer=False):
      final, h = self._layer(index)(inputs, states[index], seq_lengths=lengths, train=train,
                                    defer_norm=defer)
      finals.append(final)
      return h

    fold = (self.fold_norm and self.connection == "plain"
            and can_fold_norm(self.norm, self.norm_position, self.dropout))
    last = len(self.cells) - 1
    h = run(0, x, fold and (last > 0 or defer_norm))
    if self.connection == "plain":
      for i in range(1, len(self.cells)):
        h = run(i, h, fold and (i < last or defer_norm))
    elif self.connection == "residual":
      for start in range(1, len(self.cells), self.block_size):
        block_input = h
        for i in range(start, min(start + self.block_size, len(self.cells))):
          h = run(i, h)
        h = h + block_input
    elif self.connection == "dense":
      features, index = [h], 1
      while index < len(self.cells):
        block_end = min(index + self.block_size, len(self.cells))
        for index in range(index, block_end):
          features.append(run(index, jnp.concatenate(features, axis=-1)))
        index = block_end
        if index < len(self.cells):  # Transition layer.
          features = [run(index, jnp.concatenate(features, axis=-1))]
          index += 1
      h = jnp.concatenate(features, axis=-1)
    else:
      raise ValueError(f"unknown connection {self.connection!r}")
    if not self.time_major:
      h = jnp.swapaxes(h, 0, 1)
    return (tuple(finals), h) if self.return_carry else h

  @nn.nowrap
  def constrain(self, params: dict) -> dict:
    """Every cell's `constrain` on its parameters (after an optimizer update)."""
    return {**params, **{f"layer_{i}": constrain_directions(cell, params[f"layer_{i}"])
                         for i, cell in enumerate(self.cells)}}


def last_steps(h, lengths=None, backward_width: int = 0):
  """h[T, B, F] at each row's last valid step: h[lengths[b] - 1, b] -> [B, F].

  backward_width W > 0: the features of a bidirectional stack, in blocks of
  [forward W | backward W]; the backward halves come from step 0, where that
  direction has read the whole sequence."""
  last = h[-1] if lengths is None else jnp.take_along_axis(
      h, (lengths - 1)[None, :, None], axis=0)[0]
  if not backward_width:
    return last
  blocks = (last.shape[0], last.shape[-1] // (2 * backward_width), 2, backward_width)
  both = jnp.stack([last.reshape(blocks)[:, :, 0], h[0].reshape(blocks)[:, :, 1]], axis=2)
  return both.reshape(last.shape)


def mean_over_steps(h, lengths=None):
  """The mean of h[T, B, F] over each row's valid steps (padding is zero) -> [B, F]."""
  if lengths is None:
    return h.mean(axis=0)
  return h.sum(axis=0) / lengths[:, None].astype(h.dtype)


class SequenceModel(nn.Module):
  """inputs[B, T, D] (or int tokens [B, T] with `vocab_size`) -> outputs.

  readout "last": outputs[B, num_outputs], one per sequence, from its last
                  valid step (`pooling` "last"; a bidirectional stack's
                  backward features from its first, where that direction
                  ends) or the mean over its valid steps ("mean");
  readout "all":  outputs[B, T, num_outputs] from every step.
  `seq_lengths[B]` gives each sequence's length in a padded batch. The stack
  is time-major and returns its carry (`build_model` makes it so).
  Returns (outputs, final states of every layer).
  """
  stack: RecurrentStack
  num_outputs: int
  readout: str = "last"
  pooling: str = "last"
  vocab_size: int = 0
  embed_size: int = 0

  @nn.compact
  def __call__(self, inputs, states: Any = None, *, seq_lengths=None, train: bool):
    if self.readout not in READOUTS or self.pooling not in POOLINGS:
      raise ValueError(f"SequenceModel: readout {self.readout!r} (choose from {READOUTS}), "
                       f"pooling {self.pooling!r} (choose from {POOLINGS})")
    x = inputs
    if self.vocab_size:
      x = nn.Embed(self.vocab_size, self.embed_size or self.stack.cells[0].features,
                   name="embed")(x)
    if not (self.stack.time_major and self.stack.return_carry):
      raise ValueError("SequenceModel needs RecurrentStack(..., time_major=True, "
                       "return_carry=True)")
    seq_lengths = check_lengths(seq_lengths, (x.shape[1], x.shape[0]), "SequenceModel")
    finals, h = self.stack(jnp.swapaxes(x, 0, 1), states, seq_lengths=seq_lengths, train=train,
                      defer_norm=True)
    pending = isinstance(h, PendingNorm)
    if self.readout == "last":  # Normalise only what the readout reads (an affine map).
      pool = mean_over_steps
      if self.pooling == "last":
        pool = functools.partial(last_steps, backward_width=self._backward_width())
      h = h._replace(values=pool(h.values, seq_lengths)) if pending else pool(h, seq_lengths)
    if pending:
      h = h.materialize()
    if self.readout != "last":
      h = jnp.swapaxes(recurrences.zero_padding(h, seq_lengths), 0, 1)
    return nn.Dense(self.num_outputs, name="head")(h), finals

  @nn.nowrap
  def _backward_width(self) -> int:
    """0, or for a bidirectional stack its cells' one width H."""
    if not self.stack.bidirectional:
      return 0
    widths = {cell.features for cell in self.stack.cells}
    if len(widths) > 1:
      raise ValueError(f"SequenceModel: pooling 'last' of a bidirectional stack needs cells of "
                       f"one width, got {sorted(widths)}; use pooling 'mean'")
    return widths.pop()

  @nn.nowrap
  def constrain(self, params: dict) -> dict:
    """The parameters projected by every cell's `constrain`; the training loop
    calls this after every optimizer update."""
    return {**params, "stack": self.stack.constrain(params["stack"])}


def layer_cells(model_cfg: ml_collections.ConfigDict, seq_len: int,
                num_layers: int) -> tuple[RecurrentCellBase, ...]:
  """One unbound cell per recurrent layer: config.model.cell with its options
  config.model.cells.<cell>, built for sequences of `seq_len` steps."""
  m = model_cfg
  cell = cells.get(m.cell)(
      features=m.hidden_size, input_init=m.input_init, input_std=m.input_std,
      unroll=m.unroll, remat=m.remat, seq_len=seq_len, **m.cells[m.cell].to_dict())
  return tuple(cell.for_layer(i, num_layers) for i in range(num_layers))


def num_recurrent_layers(model_cfg: ml_collections.ConfigDict) -> int:
  """Recurrent layers in the stack, counting dense transition layers."""
  n = model_cfg.num_layers
  if model_cfg.connection == "dense" and n > 1:
    blocks = -(-(n - 1) // model_cfg.block_size)
    return n + blocks - 1
  return n


def patch_pairs(patch_sizes) -> tuple[tuple[int, int], ...]:
  """config.model.patch_sizes (each an int or [ph, pw]) -> ((ph, pw), ...)."""
  pairs = []
  for p in patch_sizes:
    pair = (p, p) if isinstance(p, int) else tuple(p)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
      raise ValueError("config.model.patch_sizes: each entry must be a positive "
                       f"int or a pair [ph, pw] of them, got {p!r}")
    pairs.append(pair)
  return tuple(pairs)


def build_renet(model_cfg: ml_collections.ConfigDict, *, seq_len: int,
                num_outputs: int) -> spatial.ReNetClassifier:
  """The ReNet classifier: one spatial block per entry of model.patch_sizes,
  each with model.hidden_size units per direction and model.cell cells."""
  m = model_cfg
  patches = patch_pairs(m.patch_sizes)
  if m.num_layers != len(patches):
    raise ValueError(f"config.model.num_layers={m.num_layers} but "
                     f"config.model.patch_sizes has {len(patches)} entries (one "
                     "per spatial RNN block); make them agree")
  channels = tuple(m.conv_channels)
  if not all(isinstance(c, int) and c > 0 for c in channels):
    raise ValueError(f"config.model.conv_channels must be positive ints, got {channels}")
  for field, choices in (("conv_order", spatial.CONV_ORDERS), ("conv_init", spatial.CONV_INITS),
                         ("classifier_activation", spatial.CLASSIFIER_ACTIVATIONS)):
    if m[field] not in choices:
      raise ValueError(f"config.model.{field}: unknown value {m[field]!r}; choose from "
                       f"{choices}")
  for field, low in (("conv_kernel", 1), ("conv_dilation", 1), ("pool", 1),
                     ("pool_window", 0), ("pool_padding", 0), ("classifier_padding", 0)):
    if not isinstance(m[field], int) or m[field] < low:
      raise ValueError(f"config.model.{field} must be an integer >= {low}, got {m[field]!r}")
  if m.pool_padding and 2 * m.pool_padding > (m.pool_window or m.pool):
    raise ValueError(f"config.model.pool_padding={m.pool_padding} is more than half the "
                     f"pool window {m.pool_window or m.pool}")
  block_cells = layer_cells(m, seq_len, len(patches))
  sizes = tuple(m.block_hidden_sizes)
  if sizes:
    if len(sizes) != len(patches) or not all(isinstance(h, int) and h > 0 for h in sizes):
      raise ValueError(f"config.model.block_hidden_sizes={sizes}: one positive int per "
                       f"spatial block ({len(patches)}), or () for hidden_size in all")
    block_cells = tuple(cell.clone(features=h) for cell, h in zip(block_cells, sizes))
  return spatial.ReNetClassifier(
      cells=block_cells, patches=patches,
      num_classes=num_outputs, conv_channels=channels, conv_kernel=m.conv_kernel,
      conv_dilation=m.conv_dilation, conv_order=m.conv_order, conv_init=m.conv_init,
      input_norm=m.input_norm, pool=m.pool, pool_window=m.pool_window,
      pool_padding=m.pool_padding, pool_last_conv=m.pool_last_conv,
      classifier_padding=m.classifier_padding,
      classifier_activation=m.classifier_activation, norm=m.norm,
      norm_position=m.norm_position, dropout=m.dropout)


def build_model(model_cfg: ml_collections.ConfigDict, *, seq_len: int,
                num_outputs: int, readout: str, vocab_size: int = 0) -> nn.Module:
  """config.model.arch picks the model:
  recurrent: SequenceModel over inputs[B, T, D];
  renet:     ReNetClassifier over images[B, H, W, C] (classification only)."""
  m = model_cfg
  arch = m.arch
  if arch == "renet":
    if readout != "last" or vocab_size:
      raise ValueError("config.model.arch='renet' classifies images; the data set "
                       f"asks for readout {readout!r} and vocab_size {vocab_size}")
    return build_renet(m, seq_len=seq_len, num_outputs=num_outputs)
  if arch != "recurrent":
    raise ValueError(f"config.model.arch: unknown value {arch!r}; choose from {ARCHS}")
  stack = RecurrentStack(
      cells=layer_cells(m, seq_len, num_recurrent_layers(m)),
      connection=m.connection, block_size=m.block_size, norm=m.norm,
      norm_position=m.norm_position, dropout=m.dropout,
      bidirectional=m.bidirectional, return_carry=True, time_major=True)
  return SequenceModel(stack=stack, num_outputs=num_outputs, readout=readout,
                       pooling=m.pooling,
                       vocab_size=vocab_size, embed_size=m.embed_size)
