"""Models: stacks of recurrent layers (plain, residual, dense) with a readout,
and the ReNet image classifier (spatial.py); `build_model` picks one by
config.model.arch."""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from irnn_jax import spatial
from irnn_jax.cells import CellSpec
from irnn_jax.layers import PendingNorm, RecurrentLayer, can_fold_norm

ARCHS = ("recurrent", "renet")
CONNECTIONS = ("plain", "residual", "dense")
READOUTS = ("last", "all")


class RecurrentStack(nn.Module):
  """Recurrent layers over time-major x[T, B, D]; `specs` has one CellSpec per
  recurrent layer, in the order they are applied.

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
  specs: tuple[CellSpec, ...]
  connection: str = "plain"
  block_size: int = 2
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0
  bidirectional: bool = False
  fold_norm: bool = True

  def _layer(self, index: int) -> RecurrentLayer:
    return RecurrentLayer(self.specs[index], self.norm, self.norm_position,
                          self.dropout, self.bidirectional, name=f"layer_{index}")

  @nn.compact
  def __call__(self, x, states: Any = None, *, train: bool):
    states = states or (None,) * len(self.specs)
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
      for i in range(1, len(self.specs)):
        h = run(i, h, defer)
    elif self.connection == "residual":
      for start in range(1, len(self.specs), self.block_size):
        block_input = h
        for i in range(start, min(start + self.block_size, len(self.specs))):
          h = run(i, h)
        h = h + block_input
    elif self.connection == "dense":
      features, index = [h], 1
      while index < len(self.specs):
        block_end = min(index + self.block_size, len(self.specs))
        for index in range(index, block_end):
          features.append(run(index, jnp.concatenate(features, axis=-1)))
        index = block_end
        if index < len(self.specs):  # Transition layer.
          features = [run(index, jnp.concatenate(features, axis=-1))]
          index += 1
      h = jnp.concatenate(features, axis=-1)
    else:
      raise ValueError(f"unknown connection {self.connection!r}")
    return h, tuple(finals)


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
      x = nn.Embed(self.vocab_size, self.embed_size or self.stack.specs[0].hidden_size,
                   name="embed")(x)
    h, finals = self.stack(jnp.swapaxes(x, 0, 1), states, train=train)
    if self.readout == "last":  # Normalise only the step the readout reads.
      h = h._replace(values=h.values[-1]) if isinstance(h, PendingNorm) else h[-1]
    if isinstance(h, PendingNorm):
      h = h.materialize()
    if self.readout != "last":
      h = jnp.swapaxes(h, 0, 1)
    return nn.Dense(self.num_outputs, name="head")(h), finals


def u_bound(model_cfg: ml_collections.ConfigDict, seq_len: int) -> float:
  """Upper bound on |u|: MAG^(1/T), or infinity when no MAG is set."""
  if model_cfg.u_max_magnitude > 0:
    return float(model_cfg.u_max_magnitude) ** (1.0 / seq_len)
  return float("inf")


def cell_specs(model_cfg: ml_collections.ConfigDict, seq_len: int,
               num_cells: int) -> tuple[CellSpec, ...]:
  """One CellSpec per recurrent layer; the last follows `last_layer_u`."""
  m = model_cfg
  bound = u_bound(m, seq_len)
  u_high = m.u_high if m.u_high is not None else min(bound, 1.0)
  base = CellSpec(
      kind=m.cell, hidden_size=m.hidden_size, activation=m.activation,
      input_init=m.input_init, input_std=m.input_std,
      identity_scale=m.identity_scale, recurrent_init=m.recurrent_init,
      recurrent_std=m.recurrent_std, u_init=m.u_init, u_low=m.u_low,
      u_high=u_high, u_value=m.u_value, forget_bias=m.forget_bias,
      unroll=m.unroll, remat=m.remat)
  if m.last_layer_u == "same":
    last = base
  elif m.last_layer_u == "near_one":
    # Default eps keeps u^T >= 1/2: the last layer remembers the whole sequence.
    eps = m.last_layer_u_eps if m.last_layer_u_eps is not None else 1.0 - 0.5 ** (1.0 / seq_len)
    last = dataclasses.replace(base, u_init="uniform", u_low=1.0 - eps,
                               u_high=min(1.0 + eps, bound))
  elif m.last_layer_u == "one":
    last = dataclasses.replace(base, u_init="constant", u_value=min(1.0, bound))
  else:
    raise ValueError(f"config.model.last_layer_u: unknown rule {m.last_layer_u!r}")
  return (base,) * (num_cells - 1) + (last,)


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
      specs=cell_specs(m, seq_len, len(patches)), patches=patches,
      num_classes=num_outputs, conv_channels=channels, conv_kernel=m.conv_kernel,
      pool=m.pool, norm=m.norm, norm_position=m.norm_position, dropout=m.dropout)


def build_model(model_cfg: ml_collections.ConfigDict, *, seq_len: int,
                num_outputs: int, readout: str, vocab_size: int = 0) -> nn.Module:
  """config.model.arch (absent = "recurrent") picks the model:
  recurrent: SequenceModel over inputs[B, T, D];
  renet:     ReNetClassifier over images[B, H, W, C] (classification only)."""
  m = model_cfg
  arch = m.get("arch", "recurrent")
  if arch == "renet":
    if readout != "last" or vocab_size:
      raise ValueError("config.model.arch='renet' classifies images; the data set "
                       f"asks for readout {readout!r} and vocab_size {vocab_size}")
    return build_renet(m, seq_len=seq_len, num_outputs=num_outputs)
  if arch != "recurrent":
    raise ValueError(f"config.model.arch: unknown value {arch!r}; choose from {ARCHS}")
  stack = RecurrentStack(
      specs=cell_specs(m, seq_len, num_recurrent_layers(m)),
      connection=m.connection, block_size=m.block_size, norm=m.norm,
      norm_position=m.norm_position, dropout=m.dropout,
      bidirectional=m.bidirectional)
  return SequenceModel(stack=stack, num_outputs=num_outputs, readout=readout,
                       vocab_size=vocab_size, embed_size=m.embed_size)
