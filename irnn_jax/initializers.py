"""Parameter initialisers used by the papers, as `jax.nn.initializers`-style functions."""

import jax
import jax.numpy as jnp


def scaled_identity(scale: float):
  """IRNN recurrent matrix: `scale * I` (Le et al. 2015 use scale 1)."""

  def init(key, shape, dtype=jnp.float32):
    del key
    if len(shape) != 2 or shape[0] != shape[1]:
      raise ValueError(f"identity init needs a square matrix, got {shape}")
    return scale * jnp.eye(shape[0], dtype=dtype)

  return init


def uniform_range(low: float, high: float):
  """U(low, high), used for the IndRNN recurrent weights `u`."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=low, maxval=high)

  return init


def constant(value: float):

  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.full(shape, value, dtype)

  return init


def gated_bias(hidden_size: int, num_gates: int, gate_values: dict[int, float]):
  """Bias of a gated cell: zeros, except the gates listed in `gate_values`
  (gate index -> value), e.g. the LSTM forget gate set to 1."""

  def init(key, shape, dtype=jnp.float32):
    del key
    assert shape == (num_gates * hidden_size,), shape
    bias = jnp.zeros((num_gates, hidden_size), dtype)
    for gate, value in gate_values.items():
      bias = bias.at[gate].set(value)
    return bias.reshape(shape)

  return init


def stacked(init, num_blocks: int):
  """Apply `init` to each of `num_blocks` [H, H] blocks of an [H, num_blocks*H]
  matrix (orthogonal per gate, as in most LSTM code)."""

  def stacked_init(key, shape, dtype=jnp.float32):
    rows, cols = shape
    keys = jax.random.split(key, num_blocks)
    blocks = [init(k, (rows, cols // num_blocks), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=1)

  return stacked_init
