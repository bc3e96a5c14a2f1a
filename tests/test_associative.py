"""The IndRNN recurrence by associative scans against the sequential loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from irnn_jax import associative, cells, layers, recurrences


def _args(dtype, steps=9, batch=4, hidden=6, seed=0):
  """z, u (both signs, |u| up to 1.2), bias and a nonnegative h0."""
  rng = np.random.default_rng(seed)
  cast = lambda a: jnp.asarray(a, dtype)
  return (cast(rng.normal(size=(steps, batch, hidden))), cast(rng.uniform(-1.2, 1.2, hidden)),
          cast(rng.normal(scale=0.3, size=hidden)),
          cast(np.abs(rng.normal(size=(batch, hidden)))))


def _loss(impl, activation, moments, lengths, block=0):
  """A scalar that reaches every output: hs, the final h and the sums."""

  def loss(z, u, bias, h0):
    if impl == "parallel":
      hs, last, sums = associative.elementwise_scan(z, u, h0, activation, bias, moments,
                                                    lengths, block)
    else:
      hs, last, sums = recurrences.elementwise_scan_autodiff(z, u, h0, activation, 1, bias,
                                                             moments, lengths)
    weights = jnp.cos(jnp.arange(hs.size, dtype=hs.dtype).reshape(hs.shape))
    total = jnp.sum(hs * weights) + jnp.sum(last ** 2)
    for scale, s in zip((0.3, 0.2), sums):
      total = total + scale * jnp.sum(s)
    return total, (hs, last, sums)

  return loss


# Blocks: 0 = one scan; 3 divides T = 9; 4 leaves a padded last block; 9 and
# 20 make one block (the whole loop, and a block longer than the sequence).
@pytest.mark.parametrize("block", [0, 3, 4, 9, 20])
@pytest.mark.parametrize("dtype, activation, moments, with_lengths", [
    ("float32", "relu", False, False), ("float32", "relu", True, True),
    ("float32", "identity", True, False), ("float64", "relu", True, True)])
def test_parallel_scan_matches_the_loop(dtype, activation, moments, with_lengths, block):
  """Outputs, final state, batch-norm sums and every gradient of the
  associative scans equal the lax.scan reference differentiated by JAX."""
  with jax.enable_x64(dtype == "float64"):
    args = _args(jnp.dtype(dtype))
    lengths = jnp.array([12, 3, 0, 6]) if with_lengths else None  # Past T, mid, none.
    results = [jax.jit(jax.value_and_grad(_loss(impl, activation, moments, lengths, block),
                                          argnums=(0, 1, 2, 3), has_aux=True))(*args)
               for impl in ("parallel", "reference")]
  (_, outputs), grads = results[0]
  (_, expected_outputs), expected_grads = results[1]
  tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-11, atol=1e-11)
  for got, want in zip(jax.tree.leaves((outputs, grads)),
                       jax.tree.leaves((expected_outputs, expected_grads))):
    assert got.dtype == want.dtype == jnp.dtype(dtype)
    got, want = np.asarray(got), np.asarray(want)
    scale = max(1.0, np.abs(want).max())  # Identity steps with |u| > 1 grow.
    np.testing.assert_allclose(got / scale, want / scale, **tol)


@pytest.mark.parametrize("block", [0, 45])
def test_parallel_scan_matches_a_numpy_loop_over_a_long_sequence(block):
  """T = 2000 with u near 1 (products of u over the sequence about 1/e to e),
  in float64: the composed maps are exact up to rounding (one scan, and blocks
  of 45 steps with a padded last block)."""
  rng = np.random.default_rng(1)
  steps, batch, hidden = 2000, 3, 5
  z = rng.normal(scale=0.1, size=(steps, batch, hidden))
  u = 1.0 + rng.uniform(-0.5, 0.5, hidden) / steps
  h = np.zeros((batch, hidden))
  expected = []
  for t in range(steps):
    h = np.maximum(z[t] + u * h, 0.0)
    expected.append(h)
  with jax.enable_x64(True):
    scan = jax.jit(lambda z, u: associative.elementwise_scan(
        z, u, jnp.zeros((batch, hidden), z.dtype), block=block)[:2])
    hs, last = scan(jnp.asarray(z), jnp.asarray(u))
  assert hs.dtype == jnp.float64
  np.testing.assert_allclose(hs, np.stack(expected), rtol=1e-10, atol=1e-11)
  np.testing.assert_allclose(last, expected[-1], rtol=1e-10, atol=1e-11)


def test_composed_clipped_maps_apply_one_after_the_other():
  """compose(f1, f2)(h) = f2(f1(h)) for clipped affine maps with slopes of
  both signs and zero, and for bounds that do and do not overlap."""
  rng = np.random.default_rng(2)
  n = 200
  a1, a2 = rng.choice([-1.5, -0.3, 0.0, 0.4, 2.0], size=(2, n))
  b1, b2 = rng.normal(size=(2, n))
  lo1, lo2 = rng.uniform(-2, 0.5, size=(2, n))
  hi1, hi2 = lo1 + rng.uniform(0, 2, n), lo2 + rng.uniform(0, 2, n)
  h = rng.normal(scale=2.0, size=n)
  with jax.enable_x64(True):
    first = tuple(map(jnp.asarray, (a1, b1, lo1, hi1)))
    second = tuple(map(jnp.asarray, (a2, b2, lo2, hi2)))
    a, b, lo, hi = map(np.asarray, associative._compose_clipped(first, second))
  composed = np.clip(a * h + b, lo, hi)
  in_turn = np.clip(a2 * np.clip(a1 * h + b1, lo1, hi1) + b2, lo2, hi2)
  np.testing.assert_allclose(composed, in_turn, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [0, 4])
def test_a_layer_with_batch_norm_gives_the_same_loss_and_gradients_either_way(block):
  """An IndRNN layer with batch norm over the valid steps of a padded batch,
  impl parallel (one scan, and blocks of 4 steps) against sequential, from the
  same parameters."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(4, 9, 3)), jnp.float32)  # [B, T, D]
  lengths = jnp.array([9, 5, 2, 7])
  layer = {impl: layers.RecurrentLayer(cells.get("indrnn")(features=6, input_std=0.5,
                                                           impl=impl, parallel_block=block),
                                       norm="sequence")
           for impl in ("sequential", "parallel")}
  variables = layer["sequential"].init(jax.random.PRNGKey(0), x, seq_lengths=lengths,
                                       train=True)

  def loss(params, impl):
    h, _ = layer[impl].apply({**variables, "params": params}, x, seq_lengths=lengths,
                             train=True, mutable=["batch_stats"])
    return jnp.sum(jnp.sin(3.0 * h))

  results = {impl: jax.jit(jax.value_and_grad(loss), static_argnums=1)(variables["params"], impl)
             for impl in layer}
  np.testing.assert_allclose(results["parallel"][0], results["sequential"][0], rtol=1e-5)
  for got, want in zip(jax.tree.leaves(results["parallel"][1]),
                       jax.tree.leaves(results["sequential"][1])):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_auto_runs_the_loop_on_a_cpu_and_parallel_refuses_tanh():
  assert jax.default_backend() == "cpu"
  assert associative.resolve_impl("auto", "relu") == "sequential"
  assert associative.resolve_impl("parallel", "relu") == "parallel"
  with pytest.raises(ValueError, match="tanh"):
    associative.resolve_impl("parallel", "tanh")
  options = cells.get("indrnn").default_options()
  options.update(impl="parallel", activation="tanh")
  with pytest.raises(ValueError, match=r"model\.cells\.indrnn\.impl"):
    cells.get("indrnn").check_options(options, "model.cells.indrnn")
  options.update(impl="parallel", activation="relu", parallel_block=-1)
  with pytest.raises(ValueError, match=r"model\.cells\.indrnn\.parallel_block"):
    cells.get("indrnn").check_options(options, "model.cells.indrnn")
  with pytest.raises(ValueError, match="block"):
    associative.indrnn_scan(*_args(jnp.float32), block=-1)
