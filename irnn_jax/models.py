"""Models: stacks of recurrent layers (plain, residual, dense) with a readout,
and the ReNet image classifier (spatial.py); `build_model` picks one by
config.model.arch."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from irnn_jax import cells, spatial
from irnn_jax.cells import RecurrentCellBase
from irnn_jax.layers import PendingNorm, RecurrentLayer, can_fold_norm, constrain_directions

ARCHS = ("recurrent", "renet")
CONNECTIONS = ("plain", "residual", "dense")
READOUTS = ("last", "all")


class RecurrentStack(nn.Module):
  """Recurrent layers over time-major x[T, B, D]; `cells` has one unbound cell
  per recurrent layer, in the order they are applied.

  plain:    h = layer_n(...layer_1(x)).
  residual: layer 1 maps D -> H; then blocks of `block_size` layers, each
            block's input added to its output (identity shortcut).
  dense:    layer 1 maps D -> H; then blocks of `block_size` layers where each
            layer reads the concatenation of the block input and all earlier
            outputs of the block; between blocks a transition layer maps that
            concatenation back to H. The last block's concatenation is output.

  In a plain stack with batch norm "sequence"/"post" and no dropout, each
  layer leaves its norm to the next layer's input projection (`PendingNorm`),
  and the stack returns a PendingNorm; `fold_norm=False` turns this off.
  """
  cells: tuple[RecurrentCellBase, ...]
  connection: str = "plain"
  block_size: int = 2
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0
  bidirectional: bool = False
  fold_norm: bool = True

  def _layer(self, index: int) -> RecurrentLayer:
    return RecurrentLayer(self.cells[index], self.norm, self.norm_position,
                          self.dropout, self.bidirectional, name=f"layer_{index}")

  @nn.compact
  def __call__(self, x, states: Any = None, *, train: bool):
    states = states or (None,) * len(self.cells)
    finals = []

    def run(index, inputs, defer_norm=False):
      h, final = self._layer(index)(inputs, states[index], train=train,
                                    defer_norm=defer_norm)
      finals.append(final)
      return h

    defer = (self.fold_norm and self.connection == "plain"
             and can_fold_norm(self.norm, self.norm_position, self.dropout))
    h = run(0, x, defer)
    if self.connection == "plain":
      for i in range(1, len(self.cells)):
        h = run(i, h, defer)
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
    return h, tuple(finals)

  @nn.nowrap
  def constrain(self, params: dict) -> dict:
    """Every cell's `constrain` on its parameters (after an optimizer update)."""
    return {**params, **{f"layer_{i}": constrain_directions(cell, params[f"layer_{i}"])
                         for i, cell in enumerate(self.cells)}}


class SequenceModel(nn.Module):
  """inputs[B, T, D] (or int tokens [B, T] with `vocab_size`) -> outputs.

  readout "last": outputs[B, num_outputs] from the last step;
  readout "all":  outputs[B, T, num_outputs] from every step.
  Returns (outputs, final states of every layer).
  """
  stack: RecurrentStack
  num_outputs: int
  readout: str = "last"
  vocab_size: int = 0
  embed_size: int = 0

  @nn.compact
  def __call__(self, inputs, states: Any = None, *, train: bool):
    x = inputs
    if self.vocab_size:
      x = nn.Embed(self.vocab_size, self.embed_size or self.stack.cells[0].features,
                   name="embed")(x)
    h, finals = self.stack(jnp.swapaxes(x, 0, 1), states, train=train)
    if self.readout == "last":  # Normalise only the step the readout reads.
      h = h._replace(values=h.values[-1]) if isinstance(h, PendingNorm) else h[-1]
    if isinstance(h, PendingNorm):
      h = h.materialize()
    if self.readout != "last":
      h = jnp.swapaxes(h, 0, 1)
    return nn.Dense(self.num_outputs, name="head")(h), finals

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
  return spatial.ReNetClassifier(
      cells=layer_cells(m, seq_len, len(patches)), patches=patches,
      num_classes=num_outputs, conv_channels=channels, conv_kernel=m.conv_kernel,
      pool=m.pool, norm=m.norm, norm_position=m.norm_position, dropout=m.dropout)


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
      bidirectional=m.bidirectional)
  return SequenceModel(stack=stack, num_outputs=num_outputs, readout=readout,
                       vocab_size=vocab_size, embed_size=m.embed_size)
