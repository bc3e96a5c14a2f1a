"""Pure recurrence functions: the part of each cell that runs inside `lax.scan`.

Every function takes the input projection of all time steps, already computed
(`z[T, B, G*H]`, one matrix product outside the loop), plus the recurrent
parameters and an initial state, and returns `(h[T, B, H], final_state)`.
"""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def _scan(step, state, z, unroll: int, reverse: bool = False):
  return jax.lax.scan(step, state, z, unroll=unroll, reverse=reverse)


def elementwise_scan(z: Array, u: Array, h0: Array, activation: Callable,
                     unroll: int = 1) -> tuple[Array, Array]:
  """IndRNN recurrence h_t = act(z_t + u * h_{t-1}); u has shape [H]."""

  def step(h, z_t):
    h = activation(z_t + u * h)
    return h, h

  h_final, hs = _scan(step, h0, z, unroll)
  return hs, h_final


def dense_scan(z: Array, w_h: Array, h0: Array, activation: Callable,
               unroll: int = 1) -> tuple[Array, Array]:
  """Full-matrix recurrence h_t = act(z_t + h_{t-1} @ W_h) (IRNN, tanh RNN)."""

  def step(h, z_t):
    h = activation(z_t + h @ w_h)
    return h, h

  h_final, hs = _scan(step, h0, z, unroll)
  return hs, h_final


def lstm_scan(z: Array, w_h: Array, state: tuple[Array, Array],
              unroll: int = 1) -> tuple[Array, tuple[Array, Array]]:
  """LSTM with gates ordered (input, forget, cell, output) along the last axis."""

  def step(carry, z_t):
    h, c = carry
    i, f, g, o = jnp.split(z_t + h @ w_h, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h

  final, hs = _scan(step, state, z, unroll)
  return hs, final


def gru_scan(z: Array, w_h: Array, b_hn: Array, h0: Array,
             unroll: int = 1) -> tuple[Array, Array]:
  """GRU, gates ordered (reset, update, new), with the reset gate applied to
  the recurrent term of the candidate: n = tanh(z_n + r * (h W_hn + b_hn))."""

  def step(h, z_t):
    zr, zu, zn = jnp.split(z_t, 3, axis=-1)
    hr, hu, hn = jnp.split(h @ w_h, 3, axis=-1)
    r = jax.nn.sigmoid(zr + hr)
    update = jax.nn.sigmoid(zu + hu)
    n = jnp.tanh(zn + r * (hn + b_hn))
    h = (1.0 - update) * n + update * h
    return h, h

  h_final, hs = _scan(step, h0, z, unroll)
  return hs, h_final
