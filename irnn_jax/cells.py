"""Recurrent cells as Flax modules.

A cell has two halves, so that layers can put batch norm between them:
  `project(x[T, B, D]) -> (z[T, B, G*H], bias[G*H])`: one matrix product for
      all steps, and the bias still to add;
  `recur(z, state, bias) -> (h[T, B, H], final_state, sums)`: the time loop,
      which adds the bias inside the loop.
`cell(x, state)` runs both and returns (h, final_state).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from irnn_jax import initializers as inits
from irnn_jax import recurrences

CELL_KINDS = ("irnn", "indrnn", "rnn", "lstm", "gru")
NUM_GATES = {"irnn": 1, "indrnn": 1, "rnn": 1, "lstm": 4, "gru": 3}
ACTIVATIONS = tuple(recurrences.ACTIVATIONS)
DEFAULT_ACTIVATION = {"irnn": "relu", "indrnn": "relu", "rnn": "tanh"}


@dataclasses.dataclass(frozen=True)
class CellSpec:
  """Everything that defines a cell and its initialisation."""
  kind: str = "indrnn"
  hidden_size: int = 128
  activation: str = ""  # "" -> the cell's default (relu for IRNN/IndRNN).
  input_init: str = "normal"  # "normal" (N(0, input_std)) or "glorot".
  input_std: float = 0.001
  identity_scale: float = 1.0  # IRNN: W_h = identity_scale * I.
  recurrent_init: str = "orthogonal"  # tanh RNN, LSTM, GRU: "orthogonal" or "normal".
  recurrent_std: float = 0.01  # Std for recurrent_init="normal".
  u_init: str = "uniform"  # IndRNN: "uniform" (U(u_low, u_high)) or "constant".
  u_low: float = 0.0
  u_high: float = 1.0
  u_value: float = 1.0
  forget_bias: float = 1.0  # LSTM forget-gate bias.
  unroll: int = 1  # lax.scan unroll factor.
  remat: bool = False  # LSTM, GRU with unroll > 1: recompute each step in the
  # backward pass (at unroll 1 every cell has a hand-written backward pass that
  # stores only h, or the state and the gates: less than a remat scan).


def _input_kernel_init(spec: CellSpec):
  if spec.input_init == "normal":
    return jax.nn.initializers.normal(spec.input_std)
  if spec.input_init == "glorot":
    return jax.nn.initializers.glorot_uniform()
  raise ValueError(f"unknown input_init {spec.input_init!r}")


def _recurrent_kernel_init(spec: CellSpec):
  if spec.kind == "irnn":
    return inits.scaled_identity(spec.identity_scale)
  if spec.recurrent_init == "orthogonal":
    block = jax.nn.initializers.orthogonal()
  elif spec.recurrent_init == "normal":
    block = jax.nn.initializers.normal(spec.recurrent_std)
  else:
    raise ValueError(f"unknown recurrent_init {spec.recurrent_init!r}")
  return inits.stacked(block, NUM_GATES[spec.kind])


def _u_init(spec: CellSpec):
  if spec.u_init == "uniform":
    return inits.uniform_range(spec.u_low, spec.u_high)
  if spec.u_init == "constant":
    return inits.constant(spec.u_value)
  raise ValueError(f"unknown u_init {spec.u_init!r}")


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


class RecurrentCell(nn.Module):
  """One recurrent cell of any kind in `CELL_KINDS`."""
  spec: CellSpec

  def setup(self):
    s = self.spec
    if s.kind not in CELL_KINDS:
      raise ValueError(f"unknown cell {s.kind!r}; choose from {CELL_KINDS}")
    h, gates = s.hidden_size, NUM_GATES[s.kind]
    bias_init = (inits.gated_bias(h, 4, {1: s.forget_bias}) if s.kind == "lstm"
                 else jax.nn.initializers.zeros)
    self.input_projection = InputProjection(gates * h, _input_kernel_init(s), bias_init)
    if s.kind == "indrnn":
      self.u = self.param("u", _u_init(s), (h,))
    else:
      self.recurrent_kernel = self.param(
          "recurrent_kernel", _recurrent_kernel_init(s), (h, gates * h))
    if s.kind == "gru":
      self.recurrent_bias_n = self.param(
          "recurrent_bias_n", jax.nn.initializers.zeros, (h,))

  @property
  def activation_name(self) -> str:
    return self.spec.activation or DEFAULT_ACTIVATION.get(self.spec.kind, "tanh")

  def initial_state(self, z) -> Any:
    """Zeros [B, H] for the projection z[T, B, G*H], made from z so that they
    live where z does (on each device's rows in a per-device map)."""
    zeros = jnp.zeros_like(z[0, :, :self.spec.hidden_size])
    return (zeros, zeros) if self.spec.kind == "lstm" else zeros

  def project(self, x, scale=None, shift=None):
    """x[T, B, D] -> (z[T, B, G*H], bias[G*H]): the input projection of all
    time steps in one matrix product, z + bias; with (scale, shift) the input
    is x * scale + shift (see InputProjection)."""
    return self.input_projection(x, scale, shift)

  def recur(self, z, state=None, bias=None, moments: bool = False):
    """z[T, B, G*H] (+ bias[G*H]) -> (h[T, B, H], final state, sums).

    With `moments`, IndRNN, IRNN and tanh RNN return sums = (sum of h, sum of
    h^2) over time and batch, taken inside the loop; else sums is ()."""
    if state is None:
      state = self.initial_state(z)
    kind, unroll, remat = self.spec.kind, self.spec.unroll, self.spec.remat
    if kind == "indrnn":
      return recurrences.elementwise_scan(z, self.u, state, self.activation_name,
                                          unroll, bias, moments)
    if kind in ("irnn", "rnn"):
      return recurrences.dense_scan(z, self.recurrent_kernel, state,
                                    self.activation_name, unroll, bias, moments)
    if kind == "lstm":
      return (*recurrences.lstm_scan(z, self.recurrent_kernel, state, unroll, remat, bias), ())
    return (*recurrences.gru_scan(z, self.recurrent_kernel, self.recurrent_bias_n,
                                  state, unroll, remat, bias), ())

  def __call__(self, x, state=None):
    z, bias = self.project(x)
    return self.recur(z, state, bias)[:2]
