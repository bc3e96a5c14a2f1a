"""Initialisers have the stated distributions."""

import jax
import numpy as np
import pytest

from irnn_jax import models
from irnn_jax.cells import GRUCell, IndRNNCell, IRNNCell, LSTMCell
from configs import adding


def _params(cell, input_dim=64, seed=0):
  x = np.zeros((2, 3, input_dim), np.float32)
  return cell.init(jax.random.PRNGKey(seed), x, method="over_sequence")["params"]


def test_irnn_identity_and_small_gaussian_inputs():
  p = _params(IRNNCell(features=100, identity_scale=0.5, input_std=0.001))
  np.testing.assert_array_equal(p["recurrent_kernel"], 0.5 * np.eye(100))
  w = np.asarray(p["input_projection"]["kernel"])
  assert w.shape == (64, 100)
  assert abs(w.mean()) < 1e-4 and abs(w.std() - 0.001) < 5e-5
  np.testing.assert_array_equal(p["input_projection"]["bias"], 0.0)


def test_indrnn_u_uniform_range_and_moments():
  p = _params(IndRNNCell(features=20000, u_low=0.2, u_high=0.6), input_dim=1)
  u = np.asarray(p["u"])
  assert u.min() >= 0.2 and u.max() <= 0.6
  assert abs(u.mean() - 0.4) < 0.005
  assert abs(u.var() - 0.4 ** 2 / 12) < 0.001  # Var of U(a, b) is (b - a)^2 / 12.


def test_indrnn_u_constant():
  p = _params(IndRNNCell(features=8, u_init="constant", u_value=0.7))
  np.testing.assert_allclose(p["u"], 0.7)


def test_lstm_forget_bias_and_orthogonal_blocks():
  p = _params(LSTMCell(features=16, forget_bias=1.0))
  bias = np.asarray(p["input_projection"]["bias"]).reshape(4, 16)
  np.testing.assert_array_equal(bias[1], 1.0)
  np.testing.assert_array_equal(bias[[0, 2, 3]], 0.0)
  w = np.asarray(p["recurrent_kernel"])
  for g in range(4):
    block = w[:, 16 * g:16 * (g + 1)]
    np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-5)


def test_glorot_input_init():
  p = _params(GRUCell(features=100, input_init="glorot"), input_dim=200)
  w = np.asarray(p["input_projection"]["kernel"])
  limit = np.sqrt(6.0 / (200 + 300))
  assert np.abs(w).max() <= limit and abs(w.std() - limit / np.sqrt(3)) < 0.002


@pytest.mark.parametrize("rule", ["near_one", "one", "same"])
def test_last_layer_u_rule_and_bound(rule):
  cfg = adding.get_config("indrnn").model
  cfg.cells.indrnn.last_layer_u = rule
  cfg.cells.indrnn.last_layer_u_eps = 0.05
  specs = models.layer_cells(cfg, seq_len=1000, num_layers=3)
  bound = 2.0 ** (1 / 1000)
  assert specs[0].u_range[1] == pytest.approx(1.0)  # min(1, MAG^(1/T)).
  assert specs[0] == specs[1]
  if rule == "near_one":
    assert specs[2].u_range == (pytest.approx(0.95), pytest.approx(bound))
  elif rule == "one":
    assert specs[2].u_init == "constant" and specs[2].u_value == 1.0
  else:
    assert specs[2] == specs[0]


def test_near_one_default_keeps_half_the_memory_over_the_sequence():
  cfg = adding.get_config("indrnn").model
  specs = models.layer_cells(cfg, seq_len=1000, num_layers=2)
  assert specs[1].u_low ** 1000 == pytest.approx(0.5)
  assert specs[1].u_high == pytest.approx(2.0 ** (1 / 1000))


def test_mag_range_draws_the_last_layer_u_between_the_bound_and_its_inverse():
  cell = IndRNNCell(features=4000, max_magnitude=5.0, seq_len=784, last_layer_u="mag_range")
  last = cell.for_layer(5, 6)
  low, high = 5.0 ** (-1 / 784), 5.0 ** (1 / 784)
  assert last.u_range == (pytest.approx(low), pytest.approx(high))
  assert cell.for_layer(0, 6).u_range == (0.0, 1.0)
  u = np.asarray(_params(last, input_dim=1)["u"])
  assert low <= u.min() and u.max() <= high
  assert abs(u.mean() - (low + high) / 2) < 0.02 * (high - low)
  with pytest.raises(ValueError, match="needs max_magnitude > 0"):
    IndRNNCell(seq_len=784, last_layer_u="mag_range").for_layer(1, 2)


def test_last_layer_rule_needs_the_sequence_length_or_an_eps():
  cell = IndRNNCell(last_layer_u="near_one")  # seq_len 0: T unknown.
  with pytest.raises(ValueError, match="seq_len"):
    cell.for_layer(1, 2)
  assert cell.clone(last_layer_u_eps=0.1).for_layer(1, 2).u_range == (0.9, 1.1)  # No bound.
  with pytest.raises(ValueError, match="last_layer_u: unknown value 'ones'"):
    IndRNNCell(last_layer_u="ones").for_layer(0, 1)
