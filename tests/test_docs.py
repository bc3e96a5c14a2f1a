"""The code of the README and docs/extending.md, run as written."""

import os
import re
import sys
import types

import jax
import numpy as np
import pytest

from irnn_jax import cells, configlib, train
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "extending.md")
README = os.path.join(ROOT, "README.md")


def _blocks(language: str, path: str = DOC) -> list[str]:
  with open(path) as f:
    return re.findall(rf"```{language}\n(.*?)```", f.read(), re.S)


def test_readme_cell_snippet_runs():
  (snippet,) = _blocks("python", README)
  scope = {}
  exec(compile(snippet, README, "exec"), scope)
  assert scope["h"].shape == (8, 784, 128)
  np.testing.assert_allclose(scope["h"], scope["h_fused"].swapaxes(0, 1), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def mgu():
  """The page's cell module, imported as irnn_jax.cells.mgu, for this module's tests."""
  module = types.ModuleType("irnn_jax.cells.mgu")
  sys.modules[module.__name__] = module
  try:
    exec(compile(_blocks("python")[0], DOC, "exec"), module.__dict__)
    yield module
  finally:
    cells.REGISTRY.pop("mgu", None)
    del sys.modules[module.__name__]


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def test_mgu_is_registered_with_its_options(mgu):
  assert cells.get("mgu") is mgu.MGUCell
  options = configlib.base_config().model.cells.mgu
  assert options.to_dict() == {"recurrent_init": "orthogonal", "recurrent_std": 0.01}
  config = configlib.base_config()
  config.model.cells.mgu.recurrent_init = "identity"
  with pytest.raises(ValueError, match=r"config\.model\.cells\.mgu\.recurrent_init"):
    configlib.validate(config)


def test_mgu_matches_a_numpy_loop(mgu):
  x = np.random.default_rng(0).normal(size=(7, 3, 2)).astype(np.float32)  # [T, B, D]
  cell = mgu.MGUCell(features=4, input_std=0.5)
  params = cell.init(jax.random.PRNGKey(1), x, method="over_sequence")["params"]
  hs, final = cell.apply({"params": params}, x, method="over_sequence")
  w = np.asarray(params["input_projection"]["kernel"], np.float64)
  b = np.asarray(params["input_projection"]["bias"], np.float64)
  u = np.asarray(params["recurrent_kernel"], np.float64)
  h = np.zeros((3, 4))
  for t in range(7):
    z = x[t] @ w + b
    f = _sigmoid(z[:, :4] + h @ u[:, :4])
    n = np.tanh(z[:, 4:] + (f * h) @ u[:, 4:])
    h = (1 - f) * h + f * n
    np.testing.assert_allclose(hs[t], h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(final, h, rtol=1e-5, atol=1e-6)


def test_usage_snippet_runs(mgu):
  exec(compile(_blocks("python")[1], DOC, "exec"), {})


def test_mgu_trains_through_the_adding_config(mgu, tmp_path):
  command = _blocks("bash")[0]
  overrides = dict(re.findall(r"--config\.([\w.]+)=(\S+)", command))
  assert overrides == {"model.cell": "mgu", "model.cells.mgu.recurrent_init": "normal"}
  cfg = tiny_config("lstm", num_steps=20)
  for path, value in overrides.items():
    *parents, leaf = path.split(".")
    section = cfg
    for name in parents:
      section = section[name]
    section[leaf] = value
  metrics = train.train_and_evaluate(cfg, str(tmp_path))
  assert metrics["step"] == 20 and np.isfinite(metrics["valid/mse"])
  # Input kernel [2, 32] and bias, recurrent kernel [16, 32], head [16, 1] and bias.
  assert metrics["parameters"] == 2 * 32 + 32 + 16 * 32 + 16 + 1
