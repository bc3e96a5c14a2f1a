"""What every cell shares: the input projection, the registry and the base class.

A cell offers two paths over one set of parameters:
  per step, for `flax.linen.RNN`: `initialize_carry(rng, input_shape)`,
      `num_feature_axes` and `__call__(carry, x[..., D]) -> (carry, y)`;
  per sequence, which the project's layers use: `project(x[T, B, D]) ->
      (z[T, B, G*H], bias[G*H])`, one matrix product for all steps, then
      `recur(z, state, bias, lengths=None) -> (h[T, B, H], final_state, sums)`,
      the fused time loop of `recurrences` (hand-written backward pass), which
      adds the bias inside the loop; with `lengths[B]` the state stops
      changing after each row's last step and h is zero there.
The input kernel is [D, G*H]: G gate blocks of H columns side by side, in the
order the cell's docstring gives.
"""

import dataclasses
import typing
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_dict

from irnn_jax import initializers as inits

REGISTRY: dict[str, type["RecurrentCellBase"]] = {}


def register(name: str):
  """Class decorator: the cell is `config.model.cell = name`."""

  def add(cls):
    if name in REGISTRY:
      raise ValueError(f"a cell is already registered as {name!r}: {REGISTRY[name]}")
    REGISTRY[name] = cls
    cls.name_in_configs = name
    return cls

  return add


def _flat_matmul(x, kernel):
  """x[..., D] @ kernel[D, F] as one 2-D product over all leading positions.
  On CPU, XLA differentiates the 2-D form better: for a 3-D x it computed the
  kernel gradient from a transposed copy of the output gradient (IndRNN 6x128
  step 101-111 ms, against 86-94 ms in 2-D)."""
  flat = x.reshape(-1, x.shape[-1]) @ kernel
  return flat.reshape(*x.shape[:-1], kernel.shape[-1])


class InputProjection(nn.Module):
  """x[..., D] @ kernel[D, F] + bias, returned as its two terms (product,
  bias[F]) so that a recurrence can add the bias inside its loop. Given
  (scale[D], shift[D]) it computes (x * scale + shift) @ kernel + bias as
  x @ (scale-scaled rows of kernel) plus a constant, so the affine-mapped x is
  never written out."""
  features: int
  kernel_init: Any
  bias_init: Any

  @nn.compact
  def __call__(self, x, scale=None, shift=None):
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    if scale is None:
      return _flat_matmul(x, kernel), bias
    return _flat_matmul(x, scale[:, None] * kernel), shift @ kernel + bias


INPUT_INITS = ("normal", "glorot")
RECURRENT_INITS = ("orthogonal", "normal", "identity", "glorot")


def recurrent_blocks_init(init: str, std: float, gates: int):
  """[H, G*H] recurrent kernel, each [H, H] gate block orthogonal, N(0, std), I
  or Glorot uniform (U(-a, a), a = sqrt(6 / 2H))."""
  if init == "orthogonal":
    block = jax.nn.initializers.orthogonal()
  elif init == "normal":
    block = jax.nn.initializers.normal(std)
  elif init == "identity":
    block = inits.scaled_identity(1.0)
  elif init == "glorot":
    block = jax.nn.initializers.glorot_uniform()
  else:
    raise ValueError(f"unknown recurrent_init {init!r}; choose from {RECURRENT_INITS}")
  return inits.stacked(block, gates)


class RecurrentCellBase(nn.RNNCellBase):
  """Fields every cell has; the model builder sets them from config.model.

  A subclass adds its own hyperparameters as fields with their defaults
  (they become config.model.cells.<name>.<field>), sets `gates`, creates its
  recurrent parameters in `setup` after `super().setup()`, and implements
  `recur` and `__call__`. `choices` lists the allowed values of its string
  fields; `check_options` is where other checks on its fields go.
  """
  features: int = 128  # H, units of the recurrent state.
  input_init: str = "normal"  # normal (N(0, input_std)) | glorot
  input_std: float = 0.001
  unroll: int = 1  # Time steps per loop iteration (lax.scan unroll).
  remat: bool = False  # Unrolled gated cells: recompute each step in the backward pass.
  seq_len: int = 0  # T the cell is built for (IndRNN's bound MAG^(1/T)); 0 = unknown.

  gates: ClassVar[int] = 1  # G: gate blocks of H columns in the projection.
  choices: ClassVar[dict[str, tuple]] = {}
  name_in_configs: ClassVar[str] = ""

  def bias_init(self):
    return jax.nn.initializers.zeros

  def setup(self):
    if self.input_init == "normal":
      kernel_init = jax.nn.initializers.normal(self.input_std)
    elif self.input_init == "glorot":
      kernel_init = jax.nn.initializers.glorot_uniform()
    else:
      raise ValueError(f"unknown input_init {self.input_init!r}; choose from {INPUT_INITS}")
    self.input_projection = InputProjection(self.gates * self.features, kernel_init,
                                            self.bias_init())

  # The per-sequence path.
  def project(self, x, scale=None, shift=None):
    """x[T, B, D] -> (z[T, B, G*H], bias[G*H]): the input projection of all
    time steps in one matrix product; with (scale, shift) the input is
    x * scale + shift (see InputProjection)."""
    return self.input_projection(x, scale, shift)

  def initial_state(self, z):
    """Zeros [B, H] for the projection z[T, B, G*H], made from z so that they
    live where z does (on each device's rows in a per-device map)."""
    return jnp.zeros_like(z[0, :, :self.features])

  def recur(self, z, state=None, bias=None, moments: bool = False, lengths=None):
    """z[T, B, G*H] (+ bias[G*H]) -> (h[T, B, H], final state, sums); sums are
    the batch-norm sums of h over time and batch (valid steps only) where the
    loop takes them (`moments`), else (). `lengths[B]` (each >= 1): row b ends
    after step lengths[b] - 1; the final state is the one there."""
    raise NotImplementedError

  def over_sequence(self, x, state=None, lengths=None):
    """x[T, B, D] -> (h[T, B, H], final state): project, then recur."""
    z, bias = self.project(x)
    return self.recur(z, state, bias, lengths=lengths)[:2]

  # The per-step path (flax.linen.RNN).
  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    return jnp.zeros(tuple(input_shape[:-1]) + (self.features,), jnp.float32)

  @property
  def num_feature_axes(self) -> int:
    return 1

  # Rules of the cell's own hyperparameters and parameters.
  @nn.nowrap
  def for_layer(self, index: int, num_layers: int) -> "RecurrentCellBase":
    """The cell of layer `index` of `num_layers` (IndRNN's last layer may
    start differently); the same cell by default."""
    del index, num_layers
    return self

  @nn.nowrap
  def constrain(self, params: dict) -> dict:
    """This cell's parameters projected back onto their allowed set after an
    optimizer update; unchanged by default."""
    return params

  @classmethod
  def option_names(cls) -> tuple[str, ...]:
    """The cell's own hyperparameters: its fields beyond the base class's."""
    base = {f.name for f in dataclasses.fields(RecurrentCellBase)}
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in base)

  @classmethod
  def default_options(cls) -> config_dict.ConfigDict:
    """The cell's hyperparameters with their defaults, as a config section."""
    hints, names = typing.get_type_hints(cls), cls.option_names()
    options = config_dict.ConfigDict()
    for f in dataclasses.fields(cls):
      if f.name not in names:
        continue
      kinds = [k for k in typing.get_args(hints[f.name]) if k is not type(None)]
      if f.default is dataclasses.MISSING or (f.default is None and not kinds):
        raise TypeError(f"{cls.__name__}.{f.name} needs a default (None only with a type "
                        "such as `float | None`)")
      # An optional value keeps its type, so that it can be set from the command line.
      options[f.name] = config_dict.placeholder(kinds[0]) if f.default is None else f.default
    return options

  @classmethod
  def check_options(cls, options, where: str) -> None:
    """Raise ValueError naming the first bad field of `options` (at `where`)."""
    names = cls.option_names()
    for key in options:
      if key not in names:
        raise ValueError(f"{where}.{key}: not a field of {cls.__name__}; its fields "
                         f"are {names}")
    for key, allowed in cls.choices.items():
      if options[key] not in allowed:
        raise ValueError(f"{where}.{key}: unknown value {options[key]!r}; choose from "
                         f"{tuple(allowed)}")

