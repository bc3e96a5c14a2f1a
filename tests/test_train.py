"""The trainer end to end on tiny adding problems."""

import json
import os

import numpy as np
import orbax.checkpoint as ocp
import pytest

from irnn_jax import data, train
from irnn_jax.summary import read_scalars
from tests.conftest import tiny_config


def _checkpoint(workdir, step):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  return manager.restore(step, args=ocp.args.StandardRestore())


def _wrap_dataset(monkeypatch, change_batch):
  """Register an "adding" builder whose train batches pass through change_batch(step, batch)."""
  original = data.BUILDERS["adding"]

  def build(cfg, seed, workdir):
    dataset = original(cfg, seed, workdir)
    train_batch = dataset.train_batch
    dataset.train_batch = lambda step: change_batch(step, train_batch(step))
    return dataset

  monkeypatch.setitem(data.BUILDERS, "adding", build)


def test_short_run_lowers_the_loss(tmp_path):
  cfg = tiny_config(num_steps=300, eval_every=300, checkpoint_every=300)
  cfg.model.hidden_size = 64
  cfg.optimizer.learning_rate = 3e-3
  metrics = train.train_and_evaluate(cfg, str(tmp_path))
  assert metrics["test/mse"] < 0.1  # The baseline predicting 1.0 scores about 0.167.
  saved = json.loads((tmp_path / "metrics.json").read_text())
  assert saved["test/mse"] == pytest.approx(metrics["test/mse"])
  assert json.loads((tmp_path / "config.json").read_text())["model"]["cell"] == "indrnn"


def test_resumed_run_matches_uninterrupted_run(tmp_path, monkeypatch):
  cfg = tiny_config()
  cfg.model.dropout = 0.2  # Dropout masks must follow the step too.
  straight = str(tmp_path / "straight")
  train.train_and_evaluate(cfg, straight)

  def crash_at_13(step, batch):
    if step == 13:
      raise KeyboardInterrupt("simulated kill")
    return batch

  resumed = str(tmp_path / "resumed")
  with monkeypatch.context() as m:
    _wrap_dataset(m, crash_at_13)
    with pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(cfg, resumed)
  assert not os.path.exists(os.path.join(resumed, "checkpoints", "20"))
  train.train_and_evaluate(cfg, resumed)
  a, b = _checkpoint(straight, 20), _checkpoint(resumed, 20)
  leaves_a, leaves_b = list(_leaves(a["params"])), list(_leaves(b["params"]))
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)
  # One continuous curve: every logging step once, the resumed values equal the straight ones.
  straight_loss = read_scalars(straight)["train/loss"]
  resumed_loss = read_scalars(resumed)["train/loss"]
  assert [s for s, _, _ in resumed_loss] == [5, 10, 15, 20]
  np.testing.assert_allclose([v for *_, v in resumed_loss], [v for *_, v in straight_loss])


def _leaves(tree):
  if isinstance(tree, dict):
    for k in sorted(tree):
      yield from _leaves(tree[k])
  else:
    yield tree


def test_non_finite_updates_are_skipped_and_counted(tmp_path, monkeypatch):
  def nan_at_3_and_4(step, batch):
    if step in (3, 4):
      batch["inputs"] = batch["inputs"] * np.nan
    return batch

  _wrap_dataset(monkeypatch, nan_at_3_and_4)
  metrics = train.train_and_evaluate(tiny_config(), str(tmp_path))
  assert metrics["skipped_updates"] == 2
  assert np.isfinite(metrics["test/mse"])
  skipped = read_scalars(str(tmp_path))["train/skipped_updates"]
  assert [v for *_, v in skipped] == [2.0, 0.0, 0.0, 0.0]


def test_run_stops_after_too_many_non_finite_updates(tmp_path, monkeypatch):
  def nan_from_12(step, batch):
    if step >= 12:
      batch["inputs"] = batch["inputs"] * np.nan
    return batch

  _wrap_dataset(monkeypatch, nan_from_12)
  cfg = tiny_config(max_nonfinite_in_row=3)
  with pytest.raises(FloatingPointError, match="the last at step 15"):
    train.train_and_evaluate(cfg, str(tmp_path))
  steps = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
  assert steps == [10]  # The last good checkpoint, untouched.


def test_time_budget_stops_evaluates_and_checkpoints(tmp_path):
  cfg = tiny_config(time_budget_minutes=1e-9)  # Spent after the first step.
  metrics = train.train_and_evaluate(cfg, str(tmp_path))
  assert metrics["step"] == 1 and "test/mse" in metrics
  assert os.listdir(tmp_path / "checkpoints") == ["1"]


def test_precise_bn_uses_mean_statistics_of_recent_batches(tmp_path):
  from irnn_jax.models import layer_cells

  cfg = tiny_config(num_steps=4, eval_every=4, checkpoint_every=4, precise_bn_batches=3)
  cfg.model.num_layers, cfg.model.norm, cfg.model.norm_position = 1, "sequence", "post"
  train.train_and_evaluate(cfg, str(tmp_path))
  saved = _checkpoint(str(tmp_path), 4)
  stats = saved["batch_stats"]["stack"]["layer_0"]["norm"]
  cell = layer_cells(cfg.model, cfg.data.seq_len, 1)[0]
  params = saved["params"]["stack"]["layer_0"]["forward"]
  dataset = data.build_dataset(cfg.data, cfg.seed, str(tmp_path))
  means, variances = [], []
  for step in (1, 2, 3):  # The three training batches before the evaluation at step 4.
    x = np.swapaxes(dataset.train_batch(step)["inputs"], 0, 1)
    h = np.asarray(cell.apply({"params": params}, x, method="over_sequence")[0], np.float64)
    means.append(h.mean(axis=(0, 1)))
    variances.append(h.var(axis=(0, 1), ddof=1))  # The running variance is unbiased.
  np.testing.assert_allclose(stats["mean"], np.mean(means, 0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"], np.mean(variances, 0), rtol=1e-3, atol=1e-6)


def test_eval_batch_stats_normalises_each_batch_by_its_own_valid_rows(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from irnn_jax import evaluation, layers, run  # pylint: disable=g-import-not-at-top

  cfg = tiny_config(num_steps=10, eval_every=10, checkpoint_every=10)
  cfg.model.norm, cfg.model.norm_position = "sequence", "post"
  cfg.data.eval_examples = 40  # Batches of 32: the second holds 8 rows and 24 of padding.
  cfg.optimizer.learning_rate = 1e-2
  train.train_and_evaluate(cfg, str(tmp_path))
  loaded = run.load_run(str(tmp_path))
  squares, count = 0.0, 0
  for batch in loaded.dataset.eval_batches("test"):
    keep = batch["mask"] > 0
    outputs = loaded.model.apply(loaded.variables, batch["inputs"][keep], train=True,
                                 rngs={"dropout": jax.random.PRNGKey(0)},
                                 mutable=["batch_stats", layers.COUNTS])[0][0]
    squares += float(np.sum((np.asarray(outputs)[:, 0] - batch["targets"][keep]) ** 2))
    count += int(keep.sum())
  own_mse = squares / count
  running = evaluation.evaluate_run(str(tmp_path), "test")["metrics"]["test/mse"]
  with open(tmp_path / "config.json") as f:
    saved = json.load(f)
  saved["train"]["eval_batch_stats"] = True
  with open(tmp_path / "config.json", "w") as f:
    json.dump(saved, f)
  own = evaluation.evaluate_run(str(tmp_path), "test")
  assert own["examples"] == 40
  # Training-mode normalisation divides by the biased variance, the statistics
  # by the unbiased one: they differ by (n - 1) / n, n = 12 steps x rows.
  assert own["metrics"]["test/mse"] == pytest.approx(own_mse, rel=5e-3)
  assert abs(running - own_mse) > 0.05 * own_mse
