"""Optimizer pieces: the u bound, the weight-decay mask, clipping and schedules."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from irnn_jax import configlib, models, optim
from irnn_jax.cells import IndRNNCell

from configs import adding


def _model_params(cfg, seq_len=20):
  model = models.build_model(cfg.model, seq_len=seq_len, num_outputs=1, readout="last")
  x = np.zeros((2, seq_len, 2), np.float32)
  return model, model.init(jax.random.PRNGKey(0), x, train=False)


def _paths(tree):
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {jax.tree_util.keystr(p): v for p, v in leaves}


def test_weight_decay_mask_spares_u_biases_and_norms():
  cfg = adding.get_config("indrnn")
  cfg.model.norm = "sequence"
  _, variables = _model_params(cfg)
  mask = _paths(optim.weight_decay_mask(variables["params"]))
  assert mask  # Not empty.
  for path, decayed in mask.items():
    spared = "'u'" in path or "'bias'" in path or "'scale'" in path
    assert decayed == (not spared), path
  assert any("'u'" in p for p in mask) and any("norm" in p for p in mask)


def test_weight_decay_changes_only_kernels():
  cfg = adding.get_config("indrnn")
  cfg.optimizer = ml_collections.ConfigDict(dict(cfg.optimizer))
  cfg.optimizer.name, cfg.optimizer.learning_rate = "sgd", 0.1
  cfg.optimizer.weight_decay, cfg.optimizer.clip_global_norm = 0.5, 0.0
  _, variables = _model_params(cfg)
  params = variables["params"]
  tx = optim.make_optimizer(cfg.optimizer)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  for path, (u, p) in zip(_paths(updates), zip(jax.tree.leaves(updates), jax.tree.leaves(params))):
    if path.endswith("'kernel']"):
      np.testing.assert_allclose(u, -0.1 * 0.5 * p, rtol=1e-6)  # SGD step on wd * p.
    else:
      np.testing.assert_array_equal(u, 0.0)


def test_u_bound_holds_after_updates():
  cfg = adding.get_config("indrnn")
  cfg.optimizer.learning_rate = 1.0  # Large steps push u far out.
  cfg.model.cells.indrnn.min_magnitude = 0.1
  model, variables = _model_params(cfg, seq_len=50)
  params = variables["params"]
  tx = optim.make_optimizer(cfg.optimizer)
  state = tx.init(params)
  bound = 2.0 ** (1 / 50)
  rng = np.random.default_rng(0)
  for _ in range(5):
    grads = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 100, a.dtype), params)
    updates, state = tx.update(grads, state, params)
    params = model.constrain(optax.apply_updates(params, updates))
  us = [v for p, v in _paths(params).items() if "'u'" in p]
  assert len(us) == 2
  for u in us:
    magnitude = np.abs(np.asarray(u))
    assert magnitude.max() <= bound + 1e-7 and magnitude.min() >= 0.1 - 1e-7
    assert magnitude.max() == pytest.approx(bound)  # The bound is active.


@pytest.mark.parametrize("rule", ["near_one", "mag_range"])
def test_last_layer_u_floor_keeps_the_last_layer_memory(rule):
  cfg = adding.get_config("indrnn")
  cfg.model.cells.indrnn.update(last_layer_u=rule, last_layer_u_floor=True, max_magnitude=4.0)
  model, variables = _model_params(cfg, seq_len=50)
  low = 4.0 ** (-1 / 50) if rule == "mag_range" else 0.5 ** (1 / 50)  # u^T = 1/4 or 1/2.
  params = jax.tree.map(lambda a: jnp.full_like(a, -0.5), variables["params"])
  out = _paths(model.constrain(params))
  us = {p: np.asarray(v) for p, v in out.items() if "'u'" in p}
  first_u = [v for p, v in us.items() if "layer_0" in p][0]
  last_u = [v for p, v in us.items() if "layer_1" in p][0]
  np.testing.assert_allclose(first_u, -0.5)  # No floor on the first layer.
  np.testing.assert_allclose(last_u, -low, rtol=1e-6)  # Raised to the floor, sign kept.


def test_indrnn_constrain_keeps_sign_and_leaves_other_params():
  cell = IndRNNCell(max_magnitude=2.0 ** 3, min_magnitude=0.1, seq_len=3)  # |u| <= 2.
  params = {"u": jnp.array([-3.0, -0.01, 0.5, 4.0]), "bias": jnp.array([9.0])}
  out = cell.constrain(params)
  np.testing.assert_allclose(out["u"], [-2.0, -0.1, 0.5, 2.0])
  np.testing.assert_array_equal(out["bias"], [9.0])


def _opt_cfg(**kw):
  cfg = configlib.base_config().optimizer
  cfg.name, cfg.learning_rate = "sgd", 1.0
  cfg.update(kw)
  return cfg


def test_elementwise_and_global_norm_clipping():
  params = {"w": jnp.zeros(3)}
  grads = {"w": jnp.array([3.0, -0.5, 4.0])}
  tx = optim.make_optimizer(_opt_cfg(clip_value=1.0))
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], [-1.0, 0.5, -1.0])
  tx = optim.make_optimizer(_opt_cfg(clip_global_norm=1.0))
  updates, _ = tx.update(grads, tx.init(params), params)
  norm = np.sqrt(9 + 0.25 + 16)
  np.testing.assert_allclose(updates["w"], -np.array([3.0, -0.5, 4.0]) / norm, rtol=1e-6)


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
def test_rmsprop_puts_eps_where_asked(eps_in_sqrt):
  """One RMSprop step from v = 0: v = (1 - decay) g^2, update -lr g / sqrt(v + eps)
  or -lr g / (sqrt(v) + eps), by hand."""
  g = np.array([1e-3, -2.0, 0.0])
  tx = optim.make_optimizer(_opt_cfg(name="rmsprop", learning_rate=0.1, rmsprop_decay=0.99,
                                     eps=1e-4, rmsprop_eps_in_sqrt=eps_in_sqrt))
  params = {"w": jnp.zeros(3)}
  updates, _ = tx.update({"w": jnp.asarray(g, jnp.float32)}, tx.init(params), params)
  v = 0.01 * g * g
  expected = -0.1 * g / (np.sqrt(v + 1e-4) if eps_in_sqrt else np.sqrt(v) + 1e-4)
  np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


def test_learning_rate_is_set_each_step():
  params = {"w": jnp.zeros(2)}
  tx = optim.make_optimizer(_opt_cfg())
  state = optim.set_learning_rate(tx.init(params), 0.25)
  updates, _ = tx.update({"w": jnp.ones(2)}, state, params)
  np.testing.assert_allclose(updates["w"], -0.25)


def test_step_schedule_and_warmup():
  cfg = configlib.base_config()
  cfg.optimizer.learning_rate = 1.0
  cfg.schedule.name, cfg.schedule.decay_every, cfg.schedule.decay_factor = "step", 10, 0.5
  rates = [float(optim.base_learning_rate(cfg, s)) for s in (0, 9, 10, 25)]
  np.testing.assert_allclose(rates, [1.0, 1.0, 0.5, 0.25])
  cfg.schedule.name, cfg.schedule.warmup_steps = "constant", 4
  np.testing.assert_allclose(float(optim.base_learning_rate(cfg, 1)), 0.5)


def test_plateau_update():
  cfg = configlib.base_config()
  cfg.schedule.plateau_patience, cfg.schedule.plateau_factor = 2, 0.1
  state = (np.inf, 0, 1.0)
  trace = []
  for value in (1.0, 0.9, 0.95, 0.92, 0.91, 0.8):
    state = optim.plateau_update(cfg, value, *state)
    trace.append(state)
  assert trace[1] == (0.9, 0, 1.0)
  assert trace[2] == (0.9, 1, 1.0)
  assert trace[3] == (0.9, 0, pytest.approx(0.1))  # Second miss: cut.
  assert trace[5] == (0.8, 0, pytest.approx(0.1))
