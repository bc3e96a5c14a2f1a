"""The code of the README, docs/extending.md and docs/library.md, run as written."""

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from irnn_jax import cells, configlib, train
from irnn_jax.data import bumps
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "extending.md")
README = os.path.join(ROOT, "README.md")


def _blocks(language: str, path: str = DOC) -> list[str]:
  with open(path) as f:
    return re.findall(rf"```{language}\n(.*?)```", f.read(), re.S)


def _readme_sequence_commands(runs: str) -> list[list[str]]:
  """The README's commands for one's own sequences, with runs/ moved to `runs`."""
  (block,) = [b for b in _blocks("bash", README) if "make_sequences" in b]
  commands = []
  for line in block.replace("\\\n", " ").splitlines():
    words = line.replace("runs/", runs + "/").split()
    assert words[0] == "python", line
    commands.append([sys.executable] + words[1:])
  return commands


@pytest.mark.slow
def test_readme_sequence_walkthrough_runs(tmp_path):
  """make the example, train on .npz and .ts, evaluate, predict, load_run: as
  the README writes them, with a budget of 3 epochs instead of 60."""
  runs = str(tmp_path)
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  for command in _readme_sequence_commands(runs):
    if "experiments.main" in command:
      command.append("--config.train.num_epochs=3")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (command, done.stderr[-3000:])
  for name in ("seq_ts", "seq_npz"):  # metrics: seq_npz's after the loop.
    with open(os.path.join(runs, name, "metrics.json")) as f:
      metrics = json.load(f)
    assert metrics["test/accuracy"] > 1 / 6 and metrics["best"]["step"] > 0
  with open(os.path.join(runs, "seq_npz", "evaluation_best_test.json")) as f:
    evaluation = json.load(f)
  assert evaluation["step"] == metrics["best"]["step"] and evaluation["examples"] == 300
  assert evaluation["metrics"]["test/accuracy"] == pytest.approx(
      metrics["best"]["metrics"]["test/accuracy"], abs=1e-6)
  with open(os.path.join(runs, "seq_npz", "test.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 300 and {r["label_name"] for r in rows} <= set(bumps.CLASSES)
  (snippet,) = _blocks("python", README)
  scope, printed = {}, io.StringIO()
  with contextlib.redirect_stdout(printed):
    exec(compile(snippet.replace("runs/", runs + "/"), README, "exec"), scope)
  assert scope["probs"].shape == (4, len(bumps.CLASSES))
  np.testing.assert_allclose(scope["probs"].sum(-1), 1.0, rtol=1e-5)
  names = [bumps.CLASSES[i] for i in scope["probs"].argmax(-1)]
  assert printed.getvalue().startswith(str(names))


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
  config.model.cells.mgu.recurrent_init = "eye"
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


LIBRARY = os.path.join(ROOT, "docs", "library.md")


def test_library_layer_matches_flax_rnn_at_valid_steps():
  scope = {}
  exec(compile(_blocks("python", LIBRARY)[0], LIBRARY, "exec"), scope)
  h, h_flax, lengths = (np.asarray(scope[k]) for k in ("h", "h_flax", "lengths"))
  valid = np.arange(h.shape[1])[None, :] < lengths[:, None]
  np.testing.assert_allclose(h[valid], h_flax[valid], rtol=1e-5, atol=1e-6)
  assert not h[~valid].any()


@pytest.mark.slow
def test_library_classifier_trains_as_written(capsys):
  scope = {}
  exec(compile(_blocks("python", LIBRARY)[1], LIBRARY, "exec"), scope)
  assert scope["accuracy"] >= 0.9  # Chance is 0.5; the page says about 0.95.
  assert "test accuracy" in capsys.readouterr().out
