"""Pure recurrence functions: the part of each cell that runs in the time loop.

Every function takes the input projection of all time steps, already computed
(`z[T, B, G*H]`, one matrix product outside the loop), plus the recurrent
parameters and an initial state, and returns `(h[T, B, H], final_state)`.
All add the projection's bias inside the loop, and the IndRNN, IRNN and
tanh-RNN ones can return batch-norm sums (`sequence_sums`), so neither costs
a pass over [T, B, H]. All take optional `lengths[B]` (each at least 1): row
b is valid for t < lengths[b]; after it the state stays as it was, outputs
are zero and the sums leave those steps out. Each is differentiated by a hand-written reverse loop
(a `custom_vjp`; LSTM and GRU only when not unrolled); the `*_autodiff`
functions are the same recurrences as a lax.scan differentiated by JAX, the
reference for tests.
"""

import jax
import jax.numpy as jnp

from irnn_jax import parallel

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
  """forward(z, weights, bias, h0, lengths, activation, unroll, moments) ->
  (hs, sums) as a `jax.custom_vjp` whose only residuals are (hs, weights, h0,
  lengths, mean of h [H] or None), differentiated by backward(activation,
  unroll, moments, residuals, (dhs, dsums)) -> (dz, dweights, dbias, dh0)."""
  recurrence = jax.custom_vjp(forward, nondiff_argnums=(5, 6, 7))

  def forward_keeping_h(z, weights, bias, h0, lengths, activation, unroll, moments):
    hs, sums = forward(z, weights, bias, h0, lengths, activation, unroll, moments)
    mean = sums[0] / _valid_count(hs, lengths) if moments else None
    # The outputs are the only activations kept.
    return (hs, sums), (hs, weights, h0, lengths, mean)

  def backward_summed(activation, unroll, moments, residuals, cotangents):
    dz, dweights, dbias, dh0 = backward(activation, unroll, moments, residuals, cotangents)
    # Weights and bias are the same on every device of the training step's
    # per-device map, so their gradients are summed over the devices.
    return dz, *parallel.sum_over_devices((dweights, dbias)), dh0, None

  recurrence.defvjp(forward_keeping_h, backward_summed)
  return recurrence


def _rows_and_steps(x) -> int:
  """How many values of each feature x[..., H] holds."""
  return x.size // x.shape[-1]


def _valid_count(hs, lengths):
  """How many valid values of each feature hs[T, B, H] holds."""
  return _rows_and_steps(hs) if lengths is None else jnp.sum(lengths).astype(hs.dtype)


def _valid_at(lengths, t):
  """Rows still inside their sequence at step t, [B, 1] bool (None: all)."""
  return None if lengths is None else (t < lengths)[:, None]


def _where_valid(valid, new, old):
  """new where the row is valid at this step, else old (with no lengths: new)."""
  if valid is None:
    return new
  return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, old)


def step_mask(lengths: Array, steps: int) -> Array:
  """valid[T, B, 1]: whether step t of row b is inside its sequence."""
  return (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]


def zero_padding(hs: Array, lengths: Array | None) -> Array:
  """hs[T, B, H] with the steps after each row's length set to zero."""
  return hs if lengths is None else jnp.where(step_mask(lengths, hs.shape[0]), hs, 0.0)


def _sums_about(shift, total_d, total_d2, count: int):
  """(sum of x, sum of (x - mean)^2) of `count` values from the sums of
  d = x - shift and of d^2: shift * count + sum d, and sum d^2 - (sum d)^2 /
  count, which does not cancel when the shift is near the mean (E[x^2] -
  E[x]^2 does in float32 when |mean| >> std)."""
  squared_deviations = jnp.maximum(total_d2 - jnp.square(total_d) / count, 0.0)
  return shift * count + total_d, squared_deviations


def sequence_sums(x: Array, axes: tuple[int, ...] | None = None,
                  valid: Array | None = None) -> tuple[Array, Array]:
  """(sum of x, sum of (x - mean)^2) over `axes` (default: all but the last,
  each sum [H]): batch-norm statistics of a whole sequence x[T, B, H], what the
  loops below return; with `valid` (bool, broadcastable to x) only of the
  valid values. Two passes: a first mean, then the sums of deviations from it
  (`_sums_about`), which also correct the mean."""
  axes = tuple(range(x.ndim - 1)) if axes is None else axes
  if valid is None:
    first_mean = x.mean(axis=axes)
    deviation = x - jnp.expand_dims(first_mean, axes)
    return _sums_about(first_mean, deviation.sum(axis=axes),
                       jnp.square(deviation).sum(axis=axes), x.size // first_mean.size)
  count = valid_count(x, axes, valid)
  first_mean = jnp.where(valid, x, 0.0).sum(axis=axes) / jnp.maximum(count, 1)
  deviation = jnp.where(valid, x - jnp.expand_dims(first_mean, axes), 0.0)
  return _sums_about(first_mean, deviation.sum(axis=axes),
                     jnp.square(deviation).sum(axis=axes), jnp.maximum(count, 1))


def valid_count(x: Array, axes: tuple[int, ...], valid: Array) -> Array:
  """How many valid values of x each sum over `axes` of `sequence_sums` counts."""
  return jnp.broadcast_to(valid, x.shape[:-1] + (1,)).sum(axis=axes).astype(x.dtype)


def _first_step_shift(z, h0, step, moments: bool):
  """The batch mean of h_0 = step(z_0, h0), [H] (one step computed outside the
  loop; every row is valid there): the reference value the loops subtract
  before summing, so that the sums of squares stay as small as the spread of
  h. Or () without `moments`."""
  return step(z[0], h0).mean(axis=tuple(range(h0.ndim - 1))) if moments else ()


def _sums_of_rows(h, shift, sums, valid=None):
  """Adds d = h - shift and d * d to the running rows of their sums, if kept
  (only on valid rows)."""
  if not sums:
    return sums
  deviation = h - shift
  if valid is not None:
    deviation = jnp.where(valid, deviation, 0.0)
  return sums[0] + deviation, sums[1] + deviation * deviation


def _index(buffer, t):
  """buffer[t] for a traced t."""
  return jax.lax.dynamic_index_in_dim(buffer, t, keepdims=False)


def _previous(buffer, t, initial):
  """The state before step t: buffer[t - 1], or `initial` at t = 0."""
  return jnp.where(t == 0, initial, _index(buffer, jnp.maximum(t - 1, 0)))


def _recurrent_kernel_grad(h0, hs, das):
  """dW_h = sum_t h_{t-1}^T da_t over all steps and rows, as one product, for
  da[T, B, G*H], the gradient of h_{t-1} @ W_h."""
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  return h_prev.reshape(-1, h0.shape[-1]).T @ das.reshape(-1, das.shape[-1])


def _forward_loop(z, h0, step, unroll: int, moments: bool, lengths=None):
  """hs[t] = step(z_t, hs[t-1]) for t = 0, ..., T-1, from hs[-1] = h0; with
  `lengths`, hs[t] = hs[t-1] on a row past its length (so hs[-1] is each
  row's last valid state). Returns (hs[T, B, H], sums): sums is (sum of h,
  sum of (h - mean)^2) over the valid steps of time and batch, each [H], when
  `moments`, else (). The loop sums h - shift and its square per row, with
  shift[H] the batch mean of h_0, and turns them into these after the loop
  (`_sums_about`).

  Not unrolled, h_t is written over z_t in z's own buffer and the next step
  reads it back from there: no zero-filled output buffer is made, and XLA
  computes h_t once. (Carrying the new h_t itself, XLA computes it twice, in
  the buffer write and in the carry; the carry then reads z_t after the write,
  so XLA copies the whole buffer every step.) Unrolled, a plain lax.scan."""
  sums = (jnp.zeros_like(h0), jnp.zeros_like(h0)) if moments else ()
  shift = _first_step_shift(z, h0, step, moments)
  if unroll == 1:
    def body(t, state):
      h, buffer, sums = state
      z_t = _index(buffer, t)
      valid = _valid_at(lengths, t)
      buffer = jax.lax.dynamic_update_index_in_dim(
          buffer, _where_valid(valid, step(z_t, h), h), t, 0)
      h = _index(buffer, t)
      return h, buffer, _sums_of_rows(h, shift, sums, valid)

    _, hs, sums = jax.lax.fori_loop(0, z.shape[0], body, (h0, z, sums))
  else:
    def scan_step(carry, inputs):
      h, sums = carry
      z_t, t = inputs
      valid = _valid_at(lengths, t)
      h = _where_valid(valid, step(z_t, h), h)
      return (h, _sums_of_rows(h, shift, sums, valid)), h

    (_, sums), hs = _scan(scan_step, (h0, sums), (z, jnp.arange(z.shape[0])), unroll)
  if not moments:
    return hs, ()
  return hs, _sums_about(shift, *(s.sum(axis=0) for s in sums), _valid_count(hs, lengths))


def _reverse_loop(hs, dhs, carry, dz_step, unroll: int, in_place: bool = True):
  """Runs t = T-1, ..., 0: (dz_t, carry) = dz_step(t, h_t, dh_t, carry).
  Returns (dz[T, B, H], final carry).

  Not unrolled, dz_t is written over dh_t (read, then written, at the same
  index), so XLA needs no fresh zero-filled buffer; unrolled, XLA would copy
  that buffer at every step, so dz goes to a fresh one (as also with
  in_place=False)."""
  steps, in_place = hs.shape[0], in_place and unroll == 1

  def body(i, state):
    carry, dzs = state
    t = steps - 1 - i
    h_t = _index(hs, t)
    dh_t = _index(dzs if in_place else dhs, t)
    dz_t, carry = dz_step(t, h_t, dh_t, carry)
    return carry, jax.lax.dynamic_update_index_in_dim(dzs, dz_t, t, 0)

  buffer = dhs if in_place else jnp.zeros_like(dhs)
  carry, dzs = jax.lax.fori_loop(0, steps, body, (carry, buffer), unroll=unroll)
  return dzs, carry


def _plus_sums_gradient(dh_t, h_t, dsums, mean):
  """dh_t plus the gradient that reaches h_t through (sum of h, sum of
  (h - mean)^2): d_total + 2 d_squared_deviations (h_t - mean), exact, as the
  sum of h - mean over all values, through which the mean acts, is zero."""
  if not dsums:
    return dh_t
  d_total, d_squared_deviations = dsums
  return dh_t + d_total + 2.0 * d_squared_deviations * (h_t - mean)


def _elementwise_forward(z, u, bias, h0, lengths, activation: str, unroll: int,
                         moments: bool):
  act = ACTIVATIONS[activation][0]
  return _forward_loop(z, h0, lambda z_t, h: act(z_t + bias + u * h), unroll, moments,
                       lengths)


def _through_step(valid, dz_t, dh_t):
  """(dz_t, gradient passed to h_{t-1} unchanged): (dz_t, 0) on a valid row,
  (0, dh_t) on a row past its length, where h_t = h_{t-1}."""
  return jnp.where(valid, dz_t, 0.0), jnp.where(valid, 0.0, dh_t)


def _elementwise_bwd(activation, unroll, moments, residuals, cotangents):
  """Reverse pass: dz_t = act'(h_t) * (dh_t + u * dz_{t+1}), one elementwise
  loop that also accumulates du = sum_t dz_t * h_{t-1} and dbias = sum_t dz_t
  over the batch rows, so no shifted copy of h is made; dh0 = u * dz_0. Past
  a row's length dz_t = 0 and dh_t passes on to h_{t-1} unchanged."""
  del moments
  hs, u, h0, lengths, mean = residuals
  dhs, dsums = cotangents
  derivative = ACTIVATIONS[activation][1]

  def dz_step(t, h_t, dh_t, carry):
    dz_next, passed, du_rows, dbias_rows = carry
    h_prev = _previous(hs, t, h0)
    if lengths is None:
      dz_t = (_plus_sums_gradient(dh_t, h_t, dsums, mean) + u * dz_next) * derivative(h_t)
    else:
      dh_t = dh_t + u * dz_next + passed
      dz_t = _plus_sums_gradient(dh_t, h_t, dsums, mean) * derivative(h_t)
      dz_t, passed = _through_step(_valid_at(lengths, t), dz_t, dh_t)
    return dz_t, (dz_t, passed, du_rows + dz_t * h_prev, dbias_rows + dz_t)

  zeros = jnp.zeros_like(h0)
  passed = () if lengths is None else zeros
  dzs, (dz_0, passed, du_rows, dbias_rows) = _reverse_loop(
      hs, dhs, (zeros, passed, zeros, zeros), dz_step, unroll, in_place=lengths is None)
  dh0 = u * dz_0 if lengths is None else u * dz_0 + passed
  return dzs, du_rows.sum(axis=0), dbias_rows.sum(axis=0), dh0


_elementwise_recurrence = _hand_differentiated(_elementwise_forward, _elementwise_bwd)


def _bias_or_zeros(bias, h0):
  return jnp.zeros(h0.shape[-1], h0.dtype) if bias is None else bias


def masked_scan(step, state, z: Array, lengths: Array | None = None, unroll: int = 1,
                remat: bool = False):
  """(hs[T, B, H], final state) of state_t = step(z_t, state_{t-1}) as a
  lax.scan differentiated by JAX, for a cell of one's own (h is the first
  leaf of the state). With `lengths[B]` the state stops changing after each
  row's last step, and hs is zero there."""

  def scan_step(state, inputs):
    z_t, t = inputs
    state = _where_valid(_valid_at(lengths, t), step(z_t, state), state)
    return state, jax.tree.leaves(state)[0]

  final, hs = _scan(scan_step, state, (z, jnp.arange(z.shape[0])), unroll, remat=remat)
  return zero_padding(hs, lengths), final


def _scan_reference(step, z, h0, unroll: int, moments: bool, lengths):
  """hs[t] = step(z_t, hs[t-1]) as a plain lax.scan, with the sums taken
  afterwards: what the hand-written passes are tested against."""
  hs, final = masked_scan(step, h0, z, lengths, unroll)
  valid = None if lengths is None else step_mask(lengths, hs.shape[0])
  sums = sequence_sums(hs, valid=valid) if moments else ()
  return hs, final, sums


def elementwise_scan(z: Array, u: Array, h0: Array, activation: str = "relu",
                     unroll: int = 1, bias: Array | None = None,
                     moments: bool = False, lengths: Array | None = None
                     ) -> tuple[Array, Array, tuple]:
  """IndRNN recurrence h_t = act(z_t + bias + u * h_{t-1}); u, bias have shape [H].

  Returns (hs, final h, sums): sums is (sum of h, sum of (h - mean)^2) over
  time and batch, each [H], as `sequence_sums`, accumulated inside the loop
  from h minus the batch mean of h_0, when `moments` (batch norm statistics
  without another pass over hs), else (). With `lengths[B]`, hs is zero past
  each row's length and the final h is its last valid one. Differentiated by
  a hand-written reverse loop; only h (and the mean of h) is stored.
  `associative.elementwise_scan` computes the same by associative scans.
  """
  _check_activation(activation)
  hs, sums = _elementwise_recurrence(z, u, _bias_or_zeros(bias, h0), h0, lengths, activation,
                                     unroll, moments)
  return zero_padding(hs, lengths), hs[-1], sums


def elementwise_scan_autodiff(z: Array, u: Array, h0: Array, activation: str = "relu",
                              unroll: int = 1, bias: Array | None = None,
                              moments: bool = False, lengths: Array | None = None
                              ) -> tuple[Array, Array, tuple]:
  """The same recurrence as a lax.scan differentiated by JAX (reference)."""
  act, bias = ACTIVATIONS[activation][0], _bias_or_zeros(bias, h0)
  return _scan_reference(lambda z_t, h: act(z_t + bias + u * h), z, h0, unroll, moments,
                         lengths)


def _dense_forward(z, w_h, bias, h0, lengths, activation: str, unroll: int, moments: bool):
  act = ACTIVATIONS[activation][0]
  return _forward_loop(z, h0, lambda z_t, h: act(z_t + bias + h @ w_h), unroll, moments,
                       lengths)


def _dense_bwd(activation, unroll, moments, residuals, cotangents):
  """Reverse pass: dz_t = act'(h_t) * (dh_t + dz_{t+1} @ W_h^T), the only
  product left in the loop, which also accumulates dbias; dW_h = sum_t
  h_{t-1}^T dz_t is one matrix product over all steps after it, and
  dh0 = dz_0 @ W_h^T."""
  del moments
  hs, w_h, h0, lengths, mean = residuals
  dhs, dsums = cotangents
  derivative = ACTIVATIONS[activation][1]
  w_t = w_h.T

  def dz_step(t, h_t, dh_t, carry):
    dh_from_next, dbias_rows = carry
    if lengths is None:
      dz_t = (_plus_sums_gradient(dh_t, h_t, dsums, mean) + dh_from_next) * derivative(h_t)
      return dz_t, (dz_t @ w_t, dbias_rows + dz_t)
    dh_t = dh_t + dh_from_next
    dz_t = _plus_sums_gradient(dh_t, h_t, dsums, mean) * derivative(h_t)
    dz_t, passed = _through_step(_valid_at(lengths, t), dz_t, dh_t)
    return dz_t, (dz_t @ w_t + passed, dbias_rows + dz_t)

  zeros = jnp.zeros_like(h0)
  dzs, (dh0, dbias_rows) = _reverse_loop(hs, dhs, (zeros, zeros), dz_step, unroll,
                                         in_place=lengths is None)
  dw = _recurrent_kernel_grad(h0, hs, dzs)
  return dzs, dw, dbias_rows.sum(axis=0), dh0


_dense_recurrence = _hand_differentiated(_dense_forward, _dense_bwd)


def dense_scan(z: Array, w_h: Array, h0: Array, activation: str = "relu",
               unroll: int = 1, bias: Array | None = None,
               moments: bool = False, lengths: Array | None = None
               ) -> tuple[Array, Array, tuple]:
  """Full-matrix recurrence h_t = act(z_t + bias + h_{t-1} @ W_h) (IRNN, tanh RNN).

  Returns (hs, final h, sums) as `elementwise_scan`. Differentiated by a
  hand-written reverse loop; only h is stored.
  """
  _check_activation(activation)
  hs, sums = _dense_recurrence(z, w_h, _bias_or_zeros(bias, h0), h0, lengths, activation,
                               unroll, moments)
  return zero_padding(hs, lengths), hs[-1], sums


def dense_scan_autodiff(z: Array, w_h: Array, h0: Array, activation: str = "relu",
                        unroll: int = 1, bias: Array | None = None,
                        moments: bool = False, lengths: Array | None = None
                        ) -> tuple[Array, Array, tuple]:
  """The same recurrence as a lax.scan differentiated by JAX (reference)."""
  act, bias = ACTIVATIONS[activation][0], _bias_or_zeros(bias, h0)
  return _scan_reference(lambda z_t, h: act(z_t + bias + h @ w_h), z, h0, unroll, moments,
                         lengths)


def _lstm_gate_scales(hidden: int, dtype):
  """(scale, shift) [4H] with sigmoid(a * scale) * scale + shift = the gate
  activations (sigmoid i, f, o; tanh g = 2 sigmoid(2a) - 1) of a[B, 4H] in one
  elementwise op over all four gates: on a CPU the per-gate ops on column
  slices ran at half the speed."""
  one, zero = jnp.ones(hidden, dtype), jnp.zeros(hidden, dtype)
  return jnp.concatenate([one, one, 2 * one, one]), jnp.concatenate([zero, zero, -one, zero])


def _lstm_forward(z, w_h, bias, h0, c0, lengths):
  """(hs, c_last, factors): h [T, B, H] of every step (past a row's length,
  its last valid one), the final c, and what the reverse step multiplies by:
  q [T, B, 4H], the derivatives of c_t (gates i, f, g) and of h_t (gate o)
  by the gates' inputs, written over z in its own buffer; k = dh_t/dc_t and
  f [T, B, H]. Past a row's length q = k = 0 and f = 1 (c passes through)."""
  scale, shift = _lstm_gate_scales(h0.shape[-1], z.dtype)

  def body(t, state):
    h, c, q, hs, ks, fs = state
    s = jax.nn.sigmoid((_index(q, t) + bias + h @ w_h) * scale)
    i, f, g, o = jnp.split(s * scale + shift, 4, axis=-1)
    c_new = f * c + i * g
    tanh_c = jnp.tanh(c_new)
    # d act / d a = scale^2 s (1 - s) for all four gates at once.
    q_t = jnp.concatenate([g, c, i, tanh_c], axis=-1) * (scale * scale) * s * (1.0 - s)
    k_t = o * (1.0 - tanh_c * tanh_c)
    valid = _valid_at(lengths, t)
    if valid is not None:
      q_t, k_t = jnp.where(valid, q_t, 0.0), jnp.where(valid, k_t, 0.0)
      f = jnp.where(valid, f, 1.0)
    h, c = _where_valid(valid, (o * tanh_c, c_new), (h, c))
    return (h, c, jax.lax.dynamic_update_index_in_dim(q, q_t, t, 0),
            jax.lax.dynamic_update_index_in_dim(hs, h, t, 0),
            jax.lax.dynamic_update_index_in_dim(ks, k_t, t, 0),
            jax.lax.dynamic_update_index_in_dim(fs, f, t, 0))

  hs = jnp.zeros_like(z[..., :h0.shape[-1]])  # From z: per device in a per-device map.
  _, c_last, q, hs, ks, fs = jax.lax.fori_loop(
      0, z.shape[0], body, (h0, c0, z, hs, jnp.zeros_like(hs), jnp.zeros_like(hs)))
  return hs, c_last, (q, ks, fs)


@jax.custom_vjp
def _lstm_recurrence(z, w_h, bias, h0, c0, lengths):
  hs, c_last, _ = _lstm_forward(z, w_h, bias, h0, c0, lengths)
  return hs, c_last


def _lstm_forward_keeping_factors(z, w_h, bias, h0, c0, lengths):
  hs, c_last, factors = _lstm_forward(z, w_h, bias, h0, c0, lengths)
  return (hs, c_last), (hs, factors, w_h, h0, lengths)


def _lstm_bwd(residuals, cotangents):
  """Reverse pass from the stored factors: per step dc_t = dc_{t+1} f_{t+1} +
  dh_t k_t, the gates' input gradient da_t = [dc, dc, dc, dh] q_t [B, 4H]
  (written over q) and dh_{t-1} = da_t @ W_h^T, the only product in the
  loop; dW_h = sum_t h_{t-1}^T da_t is one product after it."""
  hs, (q, ks, fs), w_h, h0, lengths = residuals
  dhs, dc_last = cotangents
  w_t, steps = w_h.T, hs.shape[0]

  def body(k, state):
    dh_next, dc_next, das = state
    t = steps - 1 - k
    dh = _index(dhs, t) + dh_next
    dc = dc_next + dh * _index(ks, t)
    da = jnp.concatenate([dc, dc, dc, dh], axis=-1) * _index(das, t)
    dh_prev = da @ w_t
    valid = _valid_at(lengths, t)
    if valid is not None:  # Past the row's length h passed through unchanged.
      dh_prev = jnp.where(valid, dh_prev, dh)
    return dh_prev, dc * _index(fs, t), jax.lax.dynamic_update_index_in_dim(das, da, t, 0)

  dh0, dc0, das = jax.lax.fori_loop(0, steps, body, (jnp.zeros_like(h0), dc_last, q))
  dw = _recurrent_kernel_grad(h0, hs, das)
  dw, dbias = parallel.sum_over_devices((dw, das.sum(axis=(0, 1))))
  return das, dw, dbias, dh0, dc0, None


_lstm_recurrence.defvjp(_lstm_forward_keeping_factors, _lstm_bwd)


def lstm_scan(z: Array, w_h: Array, state: tuple[Array, Array], unroll: int = 1,
              remat: bool = False, bias: Array | None = None,
              lengths: Array | None = None) -> tuple[Array, tuple[Array, Array]]:
  """LSTM with gates ordered (input, forget, cell, output) along the last axis:
  (hs, final (h, c)); with `lengths`, hs is zero past each row's length and
  the final state its last valid one. Not unrolled, the bias is added inside the loop
  and a hand-written reverse loop differentiates it, storing h and the factors
  its steps multiply by (the gates' derivatives 4H, dh/dc and f: 7H a step,
  as many as a rematerialised scan keeps: h, c, its input z + b and hs; its
  compiled temporaries are smaller, tested). Unrolled, a lax.scan
  differentiated by JAX, with `remat` one that recomputes each step."""
  h0, c0 = state
  bias = jnp.zeros(z.shape[-1], z.dtype) if bias is None else bias
  if unroll == 1:
    hs, c_last = _lstm_recurrence(z, w_h, bias, h0, c0, lengths)
    return zero_padding(hs, lengths), (hs[-1], c_last)
  return lstm_scan_autodiff(z, w_h, state, unroll, remat, bias, lengths)


def lstm_scan_autodiff(z: Array, w_h: Array, state: tuple[Array, Array], unroll: int = 1,
                       remat: bool = False, bias: Array | None = None,
                       lengths: Array | None = None) -> tuple[Array, tuple[Array, Array]]:
  """The same LSTM as a lax.scan differentiated by JAX (and the reference)."""
  z = z if bias is None else z + bias
  return masked_scan(lambda z_t, carry: lstm_step(z_t, w_h, carry), state, z, lengths,
                     unroll, remat)


def lstm_step(z_t: Array, w_h: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
  """One LSTM step from z_t = W x_t + b [B, 4H] (gates i, f, g, o): (h, c)."""
  h, c = state
  i, f, g, o = jnp.split(z_t + h @ w_h, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _gru_forward(z, w_h, bias, b_hn, h0, lengths):
  """(hs, gates, hn): h [T, B, H] of every step (past a row's length, its
  last valid one), the gate activations
  (sigmoid r, u; tanh n) [T, B, 3H], written over z in its own buffer, and the
  recurrent term of the candidate, h_{t-1} W_hn + b_hn [T, B, H]."""
  hidden = h0.shape[-1]

  def body(t, state):
    h, gates, hs, hns = state
    zr, zu, zn = jnp.split(_index(gates, t) + bias, 3, axis=-1)
    hr, hu, hn = jnp.split(h @ w_h, 3, axis=-1)
    hn = hn + b_hn
    r, u = jax.nn.sigmoid(zr + hr), jax.nn.sigmoid(zu + hu)
    n = jnp.tanh(zn + r * hn)
    gates = jax.lax.dynamic_update_index_in_dim(gates, jnp.concatenate([r, u, n], -1), t, 0)
    h = _where_valid(_valid_at(lengths, t), (1.0 - u) * n + u * h, h)
    hs = jax.lax.dynamic_update_index_in_dim(hs, h, t, 0)
    return h, gates, hs, jax.lax.dynamic_update_index_in_dim(hns, hn, t, 0)

  hs = jnp.zeros_like(z[..., :hidden])  # From z: per device in a per-device map.
  _, gates, hs, hns = jax.lax.fori_loop(0, z.shape[0], body, (h0, z, hs, jnp.zeros_like(hs)))
  return hs, gates, hns


@jax.custom_vjp
def _gru_recurrence(z, w_h, bias, b_hn, h0, lengths):
  return _gru_forward(z, w_h, bias, b_hn, h0, lengths)[0]


def _gru_forward_keeping_gates(z, w_h, bias, b_hn, h0, lengths):
  hs, gates, hns = _gru_forward(z, w_h, bias, b_hn, h0, lengths)
  return hs, (hs, gates, hns, w_h, h0, lengths)


def _gru_bwd(residuals, dhs):
  """Reverse pass from the stored gates, h and h W_hn + b_hn: per step the
  gradient of z_t [B, 3H] and dh_{t-1} = dh_t * u + da_t @ W_h^T, with da_t
  the gradient of h_{t-1} W_h (its candidate part is r * dz_n); dW_h =
  sum_t h_{t-1}^T da_t is one product after the loop."""
  hs, gates, hns, w_h, h0, lengths = residuals
  w_t, steps, hidden = w_h.T, hs.shape[0], h0.shape[-1]

  def body(k, state):
    dh_next, dzs = state
    t = steps - 1 - k
    r, u, n = jnp.split(_index(gates, t), 3, axis=-1)
    h_prev = _previous(hs, t, h0)
    dh = _index(dhs, t) + dh_next
    dzn = dh * (1.0 - u) * (1.0 - n * n)
    dzr = dzn * _index(hns, t) * r * (1.0 - r)
    dzu = dh * (h_prev - n) * u * (1.0 - u)
    da = jnp.concatenate([dzr, dzu, dzn * r], axis=-1)
    dz = jnp.concatenate([dzr, dzu, dzn], axis=-1)
    if lengths is None:
      return dh * u + da @ w_t, jax.lax.dynamic_update_index_in_dim(dzs, dz, t, 0)
    valid = _valid_at(lengths, t)
    dz, da = jnp.where(valid, dz, 0.0), jnp.where(valid, da, 0.0)
    dh_prev = jnp.where(valid, dh * u + da @ w_t, dh)
    return dh_prev, jax.lax.dynamic_update_index_in_dim(dzs, dz, t, 0)

  dh0, dzs = jax.lax.fori_loop(0, steps, body, (jnp.zeros_like(h0), jnp.zeros_like(gates)))
  das = jnp.concatenate([dzs[..., :2 * hidden], dzs[..., 2 * hidden:] * gates[..., :hidden]],
                        axis=-1)
  dw = _recurrent_kernel_grad(h0, hs, das)
  dw, dbias, db_hn = parallel.sum_over_devices(
      (dw, dzs.sum(axis=(0, 1)), das[..., 2 * hidden:].sum(axis=(0, 1))))
  return dzs, dw, dbias, db_hn, dh0, None


_gru_recurrence.defvjp(_gru_forward_keeping_gates, _gru_bwd)


def gru_scan(z: Array, w_h: Array, b_hn: Array, h0: Array, unroll: int = 1,
             remat: bool = False, bias: Array | None = None,
             lengths: Array | None = None) -> tuple[Array, Array]:
  """GRU, gates ordered (reset, update, new), with the reset gate applied to
  the recurrent term of the candidate: n = tanh(z_n + r * (h W_hn + b_hn)).
  Returns (hs, final h), with `lengths` as `lstm_scan`. Not unrolled, the bias is added inside the loop and a
  hand-written reverse loop differentiates it, storing h, the gates and
  h W_hn + b_hn (5H a step; `remat` is not needed there, as a rematerialised
  scan keeps more: h, its input z + b and hs). Unrolled, a lax.scan
  differentiated by JAX, with `remat` one that recomputes each step."""
  bias = jnp.zeros(z.shape[-1], z.dtype) if bias is None else bias
  if unroll == 1:
    hs = _gru_recurrence(z, w_h, bias, b_hn, h0, lengths)
    return zero_padding(hs, lengths), hs[-1]
  return gru_scan_autodiff(z, w_h, b_hn, h0, unroll, remat, bias, lengths)


def gru_scan_autodiff(z: Array, w_h: Array, b_hn: Array, h0: Array, unroll: int = 1,
                      remat: bool = False, bias: Array | None = None,
                      lengths: Array | None = None) -> tuple[Array, Array]:
  """The same GRU as a lax.scan differentiated by JAX (and the reference)."""
  z = z if bias is None else z + bias
  return masked_scan(lambda z_t, h: gru_step(z_t, w_h, b_hn, h), h0, z, lengths, unroll, remat)


def gru_step(z_t: Array, w_h: Array, b_hn: Array, h: Array) -> Array:
  """One GRU step from z_t = W x_t + b [B, 3H] (gates r, u, n): the new h."""
  zr, zu, zn = jnp.split(z_t, 3, axis=-1)
  hr, hu, hn = jnp.split(h @ w_h, 3, axis=-1)
  r = jax.nn.sigmoid(zr + hr)
  update = jax.nn.sigmoid(zu + hu)
  n = jnp.tanh(zn + r * (hn + b_hn))
  return (1.0 - update) * n + update * h
