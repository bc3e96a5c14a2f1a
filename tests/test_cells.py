"""Each cell's scan against a plain Python loop, and gradients against finite differences."""

import re

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

import flax.linen as nn

from irnn_jax import cells, configlib

CELL_KINDS = cells.names()


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def reference_loop(kind, p, x, state=None):
  """Plain numpy loop over time for x[T, B, D]; p is the cell's param dict."""
  w, b = np.asarray(p["input_projection"]["kernel"]), np.asarray(p["input_projection"]["bias"])
  hidden = w.shape[1] // cells.get(kind).gates
  h = np.zeros((x.shape[1], hidden)) if state is None else np.asarray(state)
  c = np.zeros_like(h)
  outputs = []
  for t in range(x.shape[0]):
    z = x[t] @ w + b
    if kind == "indrnn":
      h = np.maximum(z + np.asarray(p["u"]) * h, 0.0)
    elif kind == "irnn":
      h = np.maximum(z + h @ np.asarray(p["recurrent_kernel"]), 0.0)
    elif kind == "rnn":
      h = np.tanh(z + h @ np.asarray(p["recurrent_kernel"]))
    elif kind == "lstm":
      a = z + h @ np.asarray(p["recurrent_kernel"])
      i, f, g, o = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:3 * hidden], a[:, 3 * hidden:]
      c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
      h = sigmoid(o) * np.tanh(c)
    elif kind == "gru":
      rh = h @ np.asarray(p["recurrent_kernel"])
      r = sigmoid(z[:, :hidden] + rh[:, :hidden])
      u = sigmoid(z[:, hidden:2 * hidden] + rh[:, hidden:2 * hidden])
      n = np.tanh(z[:, 2 * hidden:] + r * (rh[:, 2 * hidden:] + np.asarray(p["recurrent_bias_n"])))
      h = (1 - u) * n + u * h
    else:
      raise NotImplementedError(f"add a numpy reference loop for the {kind!r} cell here")
    outputs.append(h)
  return np.stack(outputs)


def _cell(kind, **fields):
  """A small cell with larger input weights than the papers' 0.001, so that
  the test exercises the nonlinearity."""
  own = {"irnn": dict(identity_scale=0.9), "indrnn": dict(u_low=-1.0, u_high=1.0)}
  return cells.get(kind)(**{"features": 6, "input_std": 0.5, **own.get(kind, {}), **fields})


@pytest.mark.parametrize("kind", [k for k in CELL_KINDS
                                  if "recurrent_init" in cells.get(k).option_names()])
def test_identity_recurrent_init_is_one_identity_per_gate_block(kind):
  cell = _cell(kind, recurrent_init="identity")
  params = cell.init(jax.random.PRNGKey(0), jnp.zeros((3, 2, 4)), method="over_sequence")["params"]
  gates = cells.get(kind).gates
  np.testing.assert_array_equal(params["recurrent_kernel"], np.tile(np.eye(6), (1, gates)))


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("unroll", [1, 3])
def test_scan_matches_python_loop(kind, unroll):
  x = np.random.default_rng(0).normal(size=(9, 4, 3)).astype(np.float32)
  cell = _cell(kind, unroll=unroll)
  params = cell.init(jax.random.PRNGKey(1), x, method="over_sequence")["params"]
  hs, final = cell.apply({"params": params}, x, method="over_sequence")
  expected = reference_loop(kind, params, x.astype(np.float64))
  np.testing.assert_allclose(np.asarray(hs), expected, rtol=1e-5, atol=1e-5)
  last = final[0] if kind == "lstm" else final
  np.testing.assert_allclose(np.asarray(last), expected[-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_flax_rnn_runs_the_cell_as_recur_does(kind):
  """One step at a time in flax.linen.RNN (batch-major) and the fused loop
  (time-major) give the same h and final state from the same parameters."""
  x = np.random.default_rng(0).normal(size=(4, 9, 3)).astype(np.float32)
  cell = _cell(kind)
  rnn = nn.RNN(cell, return_carry=True)
  variables = rnn.init(jax.random.PRNGKey(2), x)
  carry, h_steps = rnn.apply(variables, x)
  h_loop, final = cell.apply({"params": variables["params"]["cell"]}, x.swapaxes(0, 1),
                             method="over_sequence")
  np.testing.assert_allclose(h_steps, np.swapaxes(h_loop, 0, 1), rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               carry, final)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_base_config_holds_each_cells_fields_and_defaults(kind):
  options = configlib.base_config().model.cells[kind].to_dict()
  cls = cells.get(kind)
  assert tuple(options) == tuple(sorted(cls.option_names()))
  assert all(options[k] == getattr(cls(), k) for k in options)
  for field, allowed in cls.choices.items():
    config = configlib.base_config()
    config.model.cells[kind][field] = "not-a-choice"
    with pytest.raises(ValueError, match=rf"config\.model\.cells\.{kind}\.{field}"):
      configlib.validate(config)


def test_initial_state_is_used():
  x = np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32)
  cell = _cell("irnn")
  params = cell.init(jax.random.PRNGKey(0), x, method="over_sequence")["params"]
  h0 = np.abs(np.random.default_rng(1).normal(size=(2, 6))).astype(np.float32)
  hs, _ = cell.apply({"params": params}, x, h0, method="over_sequence")
  np.testing.assert_allclose(np.asarray(hs), reference_loop("irnn", params, x, h0),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_gradients_match_finite_differences(kind):
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(6, 3, 2)))
    weights = jnp.asarray(rng.normal(size=(6, 3, 5)))
    cell = _cell(kind, features=5)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                          cell.init(jax.random.PRNGKey(3), x, method="over_sequence")["params"])

    def loss(p):
      hs, _ = cell.apply({"params": p}, x, method="over_sequence")
      return jnp.sum(hs * weights)

    grads = jax.grad(loss)(params)
    flat, unravel = ravel_pytree(params)
    flat_grads, _ = ravel_pytree(grads)
    eps = 1e-6
    for i in rng.choice(flat.size, size=min(25, flat.size), replace=False):
      e = jnp.zeros_like(flat).at[i].set(eps)
      numeric = (loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * eps)
      np.testing.assert_allclose(flat_grads[i], numeric, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "tanh", "identity", "leaky_relu"])
@pytest.mark.parametrize("recurrence, unroll", [("elementwise", 1), ("dense", 1),
                                               ("elementwise", 3), ("dense", 3)])
@pytest.mark.parametrize("moments", [False, True])
def test_custom_backward_matches_autodiff(recurrence, unroll, activation, moments):
  """IndRNN's (u[H]) and IRNN / tanh RNN's (W_h[H, H]) hand-written loops (h
  written over z, bias added inside the loop, batch-norm sums taken inside it)
  give the outputs and gradients of a plain lax.scan differentiated by JAX."""
  from irnn_jax import recurrences
  rng = np.random.default_rng(4)
  z = jnp.asarray(rng.normal(size=(20, 3, 4)), jnp.float32)
  if recurrence == "elementwise":
    weights = jnp.asarray(rng.uniform(-1.2, 1.2, size=4), jnp.float32)
    h0 = jnp.asarray(np.abs(rng.normal(size=(3, 4))), jnp.float32)
  else:
    weights = jnp.asarray(rng.normal(scale=0.5, size=(4, 4)), jnp.float32)
    h0 = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  bias = jnp.asarray(rng.normal(scale=0.3, size=4), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(20, 3, 4)), jnp.float32)
  sums_weights = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  fast = getattr(recurrences, f"{recurrence}_scan")
  slow = getattr(recurrences, f"{recurrence}_scan_autodiff")

  def loss(fn, z, weights, bias, h0):
    hs, last, sums = fn(z, weights, h0, activation, unroll, bias, moments)
    sums_term = sum(jnp.sum(s * w) for s, w in zip(sums, sums_weights))
    return jnp.sum(hs * cotangent) + jnp.sum(last ** 2) + sums_term, (hs, sums)

  results = [jax.jit(jax.value_and_grad(lambda *a, fn=fn: loss(fn, *a), argnums=(0, 1, 2, 3),
                                        has_aux=True))(z, weights, bias, h0)
             for fn in (fast, slow)]
  (_, (hs_fast, sums_fast)), grads_fast = results[0]
  (_, (hs_slow, sums_slow)), grads_slow = results[1]
  np.testing.assert_allclose(hs_fast, hs_slow, rtol=1e-5, atol=1e-5)
  assert len(sums_fast) == len(sums_slow) == (2 if moments else 0)
  for a, b in zip(sums_fast, sums_slow):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
  for a, b in zip(grads_fast, grads_slow):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("recurrence, unroll", [("elementwise", 1), ("dense", 1),
                                               ("elementwise", 3), ("dense", 3)])
def test_loop_sums_are_accurate_for_a_large_mean(recurrence, unroll):
  """The loops' (sum of h, sum of (h - mean)^2) and their gradient
  d_total + 2 d_M2 (h - mean) for h of mean 10 and std 0.03, against float64
  from the loop's own h (identity, zero recurrent weights: h_t = z_t)."""
  from irnn_jax import recurrences
  rng = np.random.default_rng(6)
  z = jnp.asarray(10.0 + 0.03 * rng.normal(size=(9, 64, 4)), jnp.float32)
  weights = jnp.zeros(4) if recurrence == "elementwise" else jnp.zeros((4, 4))
  h0 = jnp.zeros((64, 4))
  d_total, d_squared = (jnp.asarray(rng.normal(size=4), jnp.float32) for _ in range(2))
  scan = getattr(recurrences, f"{recurrence}_scan")

  def sums_term(z):
    hs, _, (total, squared_deviations) = scan(z, weights, h0, "identity", unroll, None, True)
    return jnp.sum(total * d_total + squared_deviations * d_squared), (hs, total,
                                                                      squared_deviations)

  (_, (hs, total, squared_deviations)), dz = jax.value_and_grad(sums_term, has_aux=True)(z)
  hs = np.asarray(hs, np.float64)
  mean = hs.mean(axis=(0, 1))
  np.testing.assert_allclose(total, hs.sum(axis=(0, 1)), rtol=1e-6)
  np.testing.assert_allclose(squared_deviations, np.square(hs - mean).sum(axis=(0, 1)),
                             rtol=1e-5)  # sum h^2 - (sum h)^2 / n: off by 2.5e-2.
  expected_dz = np.asarray(d_total) + 2 * np.asarray(d_squared) * (hs - mean)
  np.testing.assert_allclose(dz, expected_dz, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("recurrence", ["elementwise", "dense"])
def test_loops_update_their_buffers_in_place(recurrence):
  """Forward (h over z) and reverse (dz over dh) loops must not make XLA copy
  the whole [T, B, H] buffer: a copy inside a loop costs a full copy per step."""
  from irnn_jax import recurrences
  steps, batch, hidden = 16, 3, 5
  z = jnp.ones((steps, batch, hidden), jnp.float32)
  weights = jnp.full(hidden, 0.5) if recurrence == "elementwise" else 0.5 * jnp.eye(hidden)
  h0, bias = jnp.zeros((batch, hidden)), jnp.full(hidden, 0.1)
  scan = getattr(recurrences, f"{recurrence}_scan")

  def loss(z, weights):  # z * 2 and sin(hs) make both loops' buffers temporaries.
    hs, _, sums = scan(z * 2.0, weights, h0, "relu", 1, bias, True)
    return jnp.sum(jnp.sin(hs)) + jnp.sum(sums[1])

  for fn in (loss, jax.grad(loss, argnums=(0, 1))):
    hlo = jax.jit(fn).lower(z, weights).compile().as_text()
    copies = re.findall(rf"f32\[{steps},{batch},{hidden}\]\S* copy\(", hlo)
    assert not copies, f"{len(copies)} copies of the [T, B, H] buffer"


def _gated_args(kind, rng, steps, batch, hidden):
  """Random arguments (z, W_h, bias, state...) of `lstm_scan` or `gru_scan`."""
  gates = {"lstm": 4, "gru": 3}[kind]
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  z = f32(rng.normal(size=(steps, batch, gates * hidden)))
  w_h = f32(rng.normal(scale=0.5, size=(hidden, gates * hidden)))
  bias = f32(rng.normal(scale=0.3, size=gates * hidden))
  h0 = f32(rng.normal(size=(batch, hidden)))
  if kind == "lstm":
    return z, w_h, bias, h0, f32(rng.normal(size=(batch, hidden)))  # h0, c0
  return z, w_h, bias, f32(rng.normal(scale=0.3, size=hidden)), h0  # b_hn, h0


def _gated_scan(kind, fn, z, w_h, bias, a, b):
  """(hs, final state as a tuple) of the LSTM (a, b = h0, c0) or GRU (a, b = b_hn, h0)."""
  if kind == "lstm":
    return fn(z, w_h, (a, b), 1, False, bias)
  hs, last = fn(z, w_h, a, b, 1, False, bias)
  return hs, (last,)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gated_backward_matches_autodiff(kind):
  """The LSTM's and GRU's hand-written loops (bias added inside the loop, what
  the reverse loop needs written over z and beside it) give the outputs, final
  state and gradients of a lax.scan differentiated by JAX."""
  from irnn_jax import recurrences
  rng = np.random.default_rng(5)
  steps, batch, hidden = 20, 3, 4
  args = _gated_args(kind, rng, steps, batch, hidden)
  cotangent = jnp.asarray(rng.normal(size=(steps, batch, hidden)), jnp.float32)
  final_weights = jnp.asarray(rng.normal(size=(batch, hidden)), jnp.float32)

  def loss(fn, *args):
    hs, final = _gated_scan(kind, fn, *args)
    return jnp.sum(hs * cotangent) + jnp.sum(final[0] ** 2) + jnp.sum(final[-1] * final_weights), (
        hs, final)

  (_, fast), fast_grads, (_, slow), slow_grads = [
      x for fn in (getattr(recurrences, f"{kind}_scan"),
                   getattr(recurrences, f"{kind}_scan_autodiff"))
      for x in jax.jit(jax.value_and_grad(lambda *a, fn=fn: loss(fn, *a),
                                          argnums=(0, 1, 2, 3, 4), has_aux=True))(*args)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), fast, slow)
  for a, b in zip(fast_grads, slow_grads):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
  assert all(float(jnp.abs(g).max()) > 0 for g in fast_grads)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gated_loops_make_no_copies(kind):
  """The LSTM's and GRU's forward loops write over z in place (the LSTM its
  gates' derivatives, the GRU its gates), and no loop makes XLA copy a whole
  [T, B, G*H] or [T, B, H] buffer."""
  from irnn_jax import recurrences
  steps, batch, hidden = 16, 3, 5
  z, w_h, bias, a, b = _gated_args(kind, np.random.default_rng(0), steps, batch, hidden)
  scan = getattr(recurrences, f"{kind}_scan")

  def loss(z, w_h):  # z * 2 and sin(hs) make the loops' buffers temporaries.
    hs, _ = _gated_scan(kind, scan, z * 2.0, w_h, bias, a, b)
    return jnp.sum(jnp.sin(hs))

  for fn in (loss, jax.grad(loss, argnums=(0, 1))):
    hlo = jax.jit(fn).lower(z, w_h).compile().as_text()
    bodies = _loop_bodies(hlo)
    assert len(bodies) == (1 if fn is loss else 2), hlo
    copies = re.findall(rf"f32\[{steps},{batch},(?:{hidden}|{z.shape[-1]})\]\S* copy\(",
                        "\n".join(bodies))
    assert not copies, f"{len(copies)} copies of a [T, B, *] buffer inside a loop"


def _loop_bodies(hlo: str) -> list[str]:
  """The text of each while loop's body computation in compiled HLO."""
  names = set(re.findall(r"body=(%[\w.\-]+)", hlo))
  computations = re.findall(r"^(%[\w.\-]+) .*?\{\n(.*?)^\}", hlo, re.M | re.S)
  return [text for name, text in computations if name in names]
