"""Pure recurrence functions: the part of each cell that runs inside `lax.scan`.

Every function takes the input projection of all time steps, already computed
(`z[T, B, G*H]`, one matrix product outside the loop), plus the recurrent
parameters and an initial state, and returns `(h[T, B, H], final_state)`.
"""

import jax
import jax.numpy as jnp

Array = jax.Array


def _scan(step, state, z, unroll: int, reverse: bool = False, remat: bool = False):
  """lax.scan; with `remat` the backward pass recomputes each step from its
  carry and input instead of storing the step's intermediates (gates)."""
  step = jax.checkpoint(step) if remat else step
  return jax.lax.scan(step, state, z, unroll=unroll, reverse=reverse)


# Activations of the IndRNN, IRNN and tanh-RNN recurrences, each with its
# derivative written in terms of the activation's output, so that the
# hand-written backward passes need only h.
ACTIVATIONS = {
    "relu": (jax.nn.relu, lambda h: (h > 0).astype(h.dtype)),
    "tanh": (jnp.tanh, lambda h: 1.0 - h * h),
    "identity": (lambda x: x, jnp.ones_like),
    "leaky_relu": (jax.nn.leaky_relu, lambda h: jnp.where(h > 0, 1.0, 0.01).astype(h.dtype)),
}


def _check_activation(activation: str):
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation {activation!r} not in {tuple(ACTIVATIONS)}")


def _hand_differentiated(forward, backward):
  """forward(z, weights, h0, activation, unroll) -> hs as a `jax.custom_vjp`
  whose only residuals are (hs, weights, h0), differentiated by
  backward(activation, unroll, residuals, dhs) -> (dz, dweights, dh0)."""
  recurrence = jax.custom_vjp(forward, nondiff_argnums=(3, 4))

  def forward_keeping_h(z, weights, h0, activation, unroll):
    hs = forward(z, weights, h0, activation, unroll)
    return hs, (hs, weights, h0)  # The outputs are the only activations kept.

  recurrence.defvjp(forward_keeping_h, backward)
  return recurrence


def _reverse_loop(hs, dhs, carry, dz_step, unroll: int):
  """Runs t = T-1, ..., 0: (dz_t, carry) = dz_step(t, h_t, dh_t, carry).
  Returns (dz[T, B, H], final carry).

  Not unrolled, dz_t is written over dh_t (read, then written, at the same
  index), so XLA needs no fresh zero-filled buffer; unrolled, XLA would copy
  that buffer at every step, so dz goes to a fresh one."""
  steps, in_place = hs.shape[0], unroll == 1

  def body(i, state):
    carry, dzs = state
    t = steps - 1 - i
    h_t = jax.lax.dynamic_index_in_dim(hs, t, keepdims=False)
    dh_t = jax.lax.dynamic_index_in_dim(dzs if in_place else dhs, t, keepdims=False)
    dz_t, carry = dz_step(t, h_t, dh_t, carry)
    return carry, jax.lax.dynamic_update_index_in_dim(dzs, dz_t, t, 0)

  buffer = dhs if in_place else jnp.zeros_like(dhs)
  carry, dzs = jax.lax.fori_loop(0, steps, body, (carry, buffer), unroll=unroll)
  return dzs, carry


def _elementwise_forward(z, u, h0, activation: str, unroll: int):
  act = ACTIVATIONS[activation][0]

  def step(h, z_t):
    h = act(z_t + u * h)
    return h, h

  return _scan(step, h0, z, unroll)[1]


def _elementwise_bwd(activation, unroll, residuals, dhs):
  """Reverse pass: dz_t = act'(h_t) * (dh_t + u * dz_{t+1}), one elementwise
  loop that also accumulates du = sum_t dz_t * h_{t-1} over the batch rows, so
  no shifted copy of h is made; dh0 = u * dz_0."""
  hs, u, h0 = residuals
  derivative = ACTIVATIONS[activation][1]

  def dz_step(t, h_t, dh_t, carry):
    dz_next, du_rows = carry
    h_prev = jnp.where(t == 0, h0, jax.lax.dynamic_index_in_dim(
        hs, jnp.maximum(t - 1, 0), keepdims=False))
    dz_t = (dh_t + u * dz_next) * derivative(h_t)
    return dz_t, (dz_t, du_rows + dz_t * h_prev)

  zeros = jnp.zeros_like(h0)
  dzs, (dz_0, du_rows) = _reverse_loop(hs, dhs, (zeros, zeros), dz_step, unroll)
  return dzs, du_rows.sum(axis=0), u * dz_0


_elementwise_recurrence = _hand_differentiated(_elementwise_forward, _elementwise_bwd)


def elementwise_scan(z: Array, u: Array, h0: Array, activation: str = "relu",
                     unroll: int = 1) -> tuple[Array, Array]:
  """IndRNN recurrence h_t = act(z_t + u * h_{t-1}); u has shape [H].

  Differentiated by a hand-written reverse loop; only h is stored.
  """
  _check_activation(activation)
  hs = _elementwise_recurrence(z, u, h0, activation, unroll)
  return hs, hs[-1]


def elementwise_scan_autodiff(z: Array, u: Array, h0: Array, activation: str = "relu",
                              unroll: int = 1) -> tuple[Array, Array]:
  """The same recurrence differentiated by JAX's own scan transpose (reference)."""
  hs = _elementwise_forward(z, u, h0, activation, unroll)
  return hs, hs[-1]


def _dense_forward(z, w_h, h0, activation: str, unroll: int):
  act = ACTIVATIONS[activation][0]

  def step(h, z_t):
    h = act(z_t + h @ w_h)
    return h, h

  return _scan(step, h0, z, unroll)[1]


def _dense_bwd(activation, unroll, residuals, dhs):
  """Reverse pass: dz_t = act'(h_t) * (dh_t + dz_{t+1} @ W_h^T), the only
  product left in the loop; dW_h = sum_t h_{t-1}^T dz_t is one matrix product
  over all steps after it, and dh0 = dz_0 @ W_h^T."""
  hs, w_h, h0 = residuals
  derivative = ACTIVATIONS[activation][1]
  w_t = w_h.T

  def dz_step(t, h_t, dh_t, dz_next_w):
    del t
    dz_t = (dh_t + dz_next_w) * derivative(h_t)
    return dz_t, dz_t @ w_t

  dzs, dh0 = _reverse_loop(hs, dhs, jnp.zeros_like(h0), dz_step, unroll)
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  hidden = hs.shape[-1]
  dw = h_prev.reshape(-1, hidden).T @ dzs.reshape(-1, hidden)
  return dzs, dw, dh0


_dense_recurrence = _hand_differentiated(_dense_forward, _dense_bwd)


def dense_scan(z: Array, w_h: Array, h0: Array, activation: str = "relu",
               unroll: int = 1) -> tuple[Array, Array]:
  """Full-matrix recurrence h_t = act(z_t + h_{t-1} @ W_h) (IRNN, tanh RNN).

  Differentiated by a hand-written reverse loop; only h is stored.
  """
  _check_activation(activation)
  hs = _dense_recurrence(z, w_h, h0, activation, unroll)
  return hs, hs[-1]


def dense_scan_autodiff(z: Array, w_h: Array, h0: Array, activation: str = "relu",
                        unroll: int = 1) -> tuple[Array, Array]:
  """The same recurrence differentiated by JAX's own scan transpose (reference)."""
  hs = _dense_forward(z, w_h, h0, activation, unroll)
  return hs, hs[-1]


def lstm_scan(z: Array, w_h: Array, state: tuple[Array, Array], unroll: int = 1,
              remat: bool = False) -> tuple[Array, tuple[Array, Array]]:
  """LSTM with gates ordered (input, forget, cell, output) along the last axis."""

  def step(carry, z_t):
    h, c = carry
    i, f, g, o = jnp.split(z_t + h @ w_h, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h

  final, hs = _scan(step, state, z, unroll, remat=remat)
  return hs, final


def gru_scan(z: Array, w_h: Array, b_hn: Array, h0: Array,
             unroll: int = 1, remat: bool = False) -> tuple[Array, Array]:
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

  h_final, hs = _scan(step, h0, z, unroll, remat=remat)
  return hs, h_final
