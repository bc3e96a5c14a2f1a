"""Batch norm modes, time-shared dropout, directions and stack connections."""

import jax
import numpy as np
import pytest

from irnn_jax import cells
from irnn_jax.cells import IndRNNCell, InputProjection
from irnn_jax.layers import PerStepBatchNorm, RecurrentLayer, SequenceBatchNorm
from irnn_jax.models import RecurrentStack, SequenceModel
from tests.conftest import LARGE_MEAN, LARGE_MEAN_CELL, SMALL_STD, large_mean_params

CELL = IndRNNCell(features=5, input_std=0.5, u_low=-0.9, u_high=0.9)


def _x(shape=(7, 4, 3), seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _cell_output(params, x, cell=CELL):
  return np.asarray(cell.apply({"params": params}, x, method="over_sequence")[0])


@pytest.mark.parametrize("mode, kind", [("sequence", "indrnn"), ("sequence", "irnn"),
                                        ("sequence", "lstm"), ("per_step", "indrnn")])
def test_post_batch_norm_statistics(mode, kind):
  """IndRNN and IRNN sum the statistics inside their loops; LSTM's come from h."""
  x = _x()
  cell = CELL if kind == "indrnn" else cells.get(kind)(features=5, input_std=0.5)
  layer = RecurrentLayer(cell, norm=mode, norm_position="post", time_major=True)
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  y, updated = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  h = _cell_output(variables["params"]["forward"], x, cell)
  axes = (0, 1) if mode == "sequence" else (1,)
  mean, var = h.mean(axis=axes, keepdims=True), h.var(axis=axes, keepdims=True)
  np.testing.assert_allclose(np.asarray(y), (h - mean) / np.sqrt(var + 1e-5), atol=1e-4)
  stats = updated["batch_stats"]["norm"]
  np.testing.assert_allclose(stats["mean"], 0.1 * h.mean(axis=axes), atol=1e-5)
  # From var = 1, towards the unbiased variance.
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * h.var(axis=axes, ddof=1), rtol=1e-5)
  # Evaluation uses the running statistics, per step in per_step mode.
  y_eval = layer.apply({**variables, "batch_stats": updated["batch_stats"]}, x, train=False)
  run_mean = np.asarray(stats["mean"])
  run_var = np.asarray(stats["var"])
  if mode == "per_step":
    run_mean, run_var = run_mean[:, None], run_var[:, None]
  np.testing.assert_allclose(np.asarray(y_eval), (h - run_mean) / np.sqrt(run_var + 1e-5),
                             atol=1e-4)


def test_pre_batch_norm_normalises_the_projection_before_the_recurrence():
  x = _x()
  layer = RecurrentLayer(CELL, norm="per_step", norm_position="pre", time_major=True)
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  y, _ = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  p = variables["params"]["forward"]
  z = x @ np.asarray(p["input_projection"]["kernel"]) + np.asarray(p["input_projection"]["bias"])
  z = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-5)
  h, out = np.zeros((4, 5)), []
  for t in range(7):
    h = np.maximum(z[t] + np.asarray(p["u"]) * h, 0)
    out.append(h)
  np.testing.assert_allclose(np.asarray(y), np.stack(out), atol=1e-4)


def test_dropout_mask_is_shared_over_time():
  x = np.ones((30, 8, 3), np.float32)
  cell = CELL.clone(u_init="constant", u_value=0.0, input_std=1.0)
  layer = RecurrentLayer(cell, dropout=0.5, time_major=True)
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  y = layer.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(5)})
  h = layer.apply(variables, x, train=False)
  y, h = np.asarray(y), np.asarray(h)
  kept = y != 0
  assert (kept == kept[0:1]).all()  # Same units dropped at every step.
  assert 0.2 < kept[0][h[0] > 0].mean() < 0.8
  np.testing.assert_allclose(y[kept], 2.0 * h[kept], rtol=1e-6)  # Scaled by 1/(1-p).


def test_bidirectional_second_half_is_forward_pass_of_reversed_input():
  x = _x()
  layer = RecurrentLayer(CELL, bidirectional=True, time_major=True)
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  y = layer.apply(variables, x, train=False)
  y = np.asarray(y)
  assert y.shape == (7, 4, 10)
  np.testing.assert_allclose(y[..., :5], _cell_output(variables["params"]["forward"], x), atol=1e-6)
  backward = _cell_output(variables["params"]["backward"], x[::-1])
  np.testing.assert_allclose(y[..., 5:], backward[::-1], atol=1e-6)


def _layer_fn(variables, name):
  p = variables["params"][name]["forward"]
  return lambda inp: _cell_output(p, inp)


def test_residual_stack_adds_block_inputs():
  x = _x()
  stack = RecurrentStack((CELL,) * 5, connection="residual", block_size=2,
                         return_carry=True, time_major=True)
  variables = stack.init(jax.random.PRNGKey(0), x, train=False)
  finals, y = stack.apply(variables, x, train=False)
  f = [_layer_fn(variables, f"layer_{i}") for i in range(5)]
  h = f[0](x)
  h = f[2](f[1](h)) + h
  h = f[4](f[3](h)) + h
  np.testing.assert_allclose(np.asarray(y), h, atol=1e-5)
  assert len(finals) == 5


def test_dense_stack_concatenates_and_transitions():
  x = _x()
  stack = RecurrentStack((CELL,) * 6, connection="dense", block_size=2, time_major=True)
  variables = stack.init(jax.random.PRNGKey(0), x, train=False)
  y = stack.apply(variables, x, train=False)
  f = [_layer_fn(variables, f"layer_{i}") for i in range(6)]
  cat = lambda *a: np.concatenate(a, axis=-1)
  h0 = f[0](x)
  h1 = f[1](h0)
  h2 = f[2](cat(h0, h1))
  t = f[3](cat(h0, h1, h2))  # Transition.
  h4 = f[4](t)
  h5 = f[5](cat(t, h4))
  np.testing.assert_allclose(np.asarray(y), cat(t, h4, h5), atol=1e-5)



def test_input_projection_folds_an_affine_input():
  x = _x()
  scale = np.random.default_rng(1).uniform(0.5, 2.0, 3).astype(np.float32)
  shift = np.random.default_rng(2).normal(size=3).astype(np.float32)
  proj = InputProjection(4, jax.nn.initializers.normal(1.0), jax.nn.initializers.normal(1.0))
  params = proj.init(jax.random.PRNGKey(0), x)["params"]
  product, bias = proj.apply({"params": params}, x, scale, shift)
  expected = (x * scale + shift) @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
  np.testing.assert_allclose(np.asarray(product + bias), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("readout, bidirectional", [("last", False), ("all", False),
                                                    ("last", True)])
def test_folded_batch_norm_matches_normalising_each_layer(readout, bidirectional):
  """A plain stack with post sequence norm defers each norm to the next
  layer's kernel; outputs, running statistics and gradients must not change."""
  x = _x((9, 4, 3))
  cell = CELL.clone(features=6)

  def model(fold):
    stack = RecurrentStack((cell,) * 3, norm="sequence", norm_position="post",
                           bidirectional=bidirectional, fold_norm=fold, return_carry=True,
                           time_major=True)
    return SequenceModel(stack, num_outputs=2, readout=readout)

  variables = model(False).init(jax.random.PRNGKey(0), x, train=False)

  def loss(params, fold):
    (out, _), updated = model(fold).apply(
        {**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return (out ** 2).mean(), (out, updated["batch_stats"])

  results = [jax.value_and_grad(loss, has_aux=True)(variables["params"], fold)
             for fold in (True, False)]
  (value_f, (out_f, stats_f)), grads_f = results[0]
  (value, (out, stats)), grads = results[1]
  np.testing.assert_allclose(np.asarray(out_f), np.asarray(out), rtol=1e-4, atol=1e-5)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  jax.tree.map(close, stats_f, stats)
  jax.tree.map(close, grads_f, grads)
  trained = {**variables, "batch_stats": stats}
  eval_f = model(True).apply(trained, x, train=False)[0]
  eval_ref = model(False).apply(trained, x, train=False)[0]
  np.testing.assert_allclose(np.asarray(eval_f), np.asarray(eval_ref), rtol=1e-4, atol=1e-5)


def _cell_loss_and_grads(kind: str, remat: bool, x, unroll: int = 1):
  cell = cells.get(kind)(features=16, input_init="glorot", remat=remat, unroll=unroll)
  params = cell.init(jax.random.PRNGKey(0), x, method="over_sequence")["params"]
  step = jax.jit(jax.value_and_grad(
      lambda p: (cell.apply({"params": p}, x, method="over_sequence")[0] ** 2).mean()))
  temp = step.lower(params).compile().memory_analysis().temp_size_in_bytes
  value, grads = step(params)
  return value, grads, temp


@pytest.mark.slow
@pytest.mark.parametrize("kind, unroll", [("gru", 2), ("lstm", 2)])
def test_remat_same_gradients_less_memory(kind, unroll):
  x = _x((400, 8, 3))
  value, grads, temp = _cell_loss_and_grads(kind, False, x, unroll)
  value_r, grads_r, temp_r = _cell_loss_and_grads(kind, True, x, unroll)
  np.testing.assert_allclose(value_r, value, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               grads_r, grads)
  assert temp_r < 0.8 * temp, (temp_r, temp)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gated_backward_stores_less_than_remat(kind):
  """The LSTM's and GRU's hand-written backward passes (unroll 1) keep what
  their reverse steps need: less than a rematerialised scan."""
  x = _x((400, 8, 3))
  value, grads, temp = _cell_loss_and_grads(kind, False, x)
  value_r, grads_r, temp_r = _cell_loss_and_grads(kind, True, x, unroll=2)
  np.testing.assert_allclose(value, value_r, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               grads, grads_r)
  assert temp < temp_r, (temp, temp_r)


# Batch norm of values with a large mean against their spread, over enough
# values (9 x 64) for E[h^2] - E[h]^2 in float32 to lose the variance.


def _large_mean_x(shape=(9, 64, 6), seed=0):
  return (LARGE_MEAN + SMALL_STD * _x(shape, seed)).astype(np.float32)


def _normalised64(h, axes=(0, 1)):
  """Two-pass batch norm of h in float64 over `axes`: the reference."""
  h = np.asarray(h, np.float64)
  mean = h.mean(axis=axes, keepdims=True)
  return (h - mean) / np.sqrt(np.square(h - mean).mean(axis=axes, keepdims=True) + 1e-5)


def _max_error(y, reference):
  return float(np.abs(np.asarray(y, np.float64) - reference).max())


@pytest.mark.parametrize("norm, axes", [(SequenceBatchNorm, (0, 1)), (PerStepBatchNorm, (1,))])
def test_batch_norm_is_accurate_for_a_large_mean(norm, axes):
  x = _large_mean_x()
  variables = norm().init(jax.random.PRNGKey(0), x, train=False)
  y, _ = norm().apply(variables, x, train=True, mutable=["batch_stats"])
  assert _max_error(y, _normalised64(x, axes)) < 1e-3


@pytest.mark.parametrize("norm, axes", [(SequenceBatchNorm, (0, 1)), (PerStepBatchNorm, (1,))])
def test_running_variance_is_unbiased(norm, axes):
  """Training tracks n / (n - 1) times the batch variance, as PyTorch, while it
  normalises by the batch variance itself."""
  x = _large_mean_x((9, 4, 6))
  variables = norm().init(jax.random.PRNGKey(0), x, train=False)
  y, updated = norm().apply(variables, x, train=True, mutable=["batch_stats"])
  stats = updated["batch_stats"]
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x64.var(axis=axes, ddof=1), rtol=1e-6)
  np.testing.assert_allclose(stats["mean"], 0.1 * x64.mean(axis=axes), rtol=1e-6)
  assert _max_error(y, _normalised64(x, axes)) < 1e-3


def _large_mean_layer_output(module, x):
  """(y, params) of `module` in training, its parameters made large-mean."""
  variables = module.init(jax.random.PRNGKey(0), x, train=False)
  params = large_mean_params(variables["params"])
  y, _ = module.apply({**variables, "params": params}, x, train=True,
                      mutable=["batch_stats"])
  return y, params


def _projection64(x, params):
  """x W + b of a cell's input projection in float64."""
  projection = params["input_projection"]
  return (np.asarray(x, np.float64) @ np.asarray(projection["kernel"], np.float64)
          + np.asarray(projection["bias"], np.float64))


def test_loop_summed_batch_norm_is_accurate_for_a_large_mean():
  """Post-activation sequence norm, its statistics summed in the time loop,
  against the layer's own h normalised in float64."""
  x = _x((9, 64, 6))
  layer = RecurrentLayer(LARGE_MEAN_CELL, norm="sequence", norm_position="post",
                         time_major=True)
  y, params = _large_mean_layer_output(layer, x)
  h = _cell_output(params["forward"], x, LARGE_MEAN_CELL)
  assert abs(h.mean() - LARGE_MEAN) < 0.1 and h.std(axis=(0, 1)).max() < 0.05
  assert _max_error(y, _normalised64(h)) < 1e-3


@pytest.mark.parametrize("norm, axes", [("sequence", (0, 1)), ("per_step", (1,))])
def test_pre_activation_batch_norm_is_accurate_for_a_large_mean(norm, axes):
  """Pre-activation norm of z = x W + b; with u = 0 and the identity the layer
  outputs the normalised z."""
  x = _x((9, 64, 6))
  y, params = _large_mean_layer_output(
      RecurrentLayer(LARGE_MEAN_CELL, norm=norm, norm_position="pre", time_major=True), x)
  assert _max_error(y, _normalised64(_projection64(x, params["forward"]), axes)) < 1e-3


@pytest.mark.parametrize("fold", [True, False])
def test_folded_batch_norm_is_accurate_for_a_large_mean(fold):
  """Two layers with post sequence norm, the first folded into the second's
  kernel (or written out): against float64 layers normalised in two passes."""
  x = _x((9, 64, 6))
  y, params = _large_mean_layer_output(
      RecurrentStack((LARGE_MEAN_CELL,) * 2, norm="sequence", norm_position="post",
                     fold_norm=fold, time_major=True), x)
  reference = x
  for i in range(2):
    h = _projection64(reference, params[f"layer_{i}"]["forward"])  # u = 0: h_t = z_t + b.
    assert abs(h.mean() - LARGE_MEAN) < 0.1 and h.std(axis=(0, 1)).max() < 0.05
    reference = _normalised64(h)
  assert _max_error(y, reference) < 1e-3
