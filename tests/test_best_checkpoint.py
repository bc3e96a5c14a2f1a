"""The best checkpoint: picked by config.train.select_metric, kept beside the
latest ones, recorded in metrics.json and remembered by a resumed run; and
config.train.num_epochs."""

import json
import math
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import row_mnist
from irnn_jax import best_checkpoint, checkpoints, evaluation, run, train
from tests.conftest import tiny_config


def _script_valid_loss(monkeypatch, values: dict):
  """Evaluations report valid/loss = values[step] and test/loss = values[step] + 1;
  the other metrics are the real ones."""
  real = train.evaluate

  def scripted(eval_step, state, dataset, split, mesh, batch_stats_step=None):
    metrics = real(eval_step, state, dataset, split, mesh, batch_stats_step)
    value = values[int(state.step)]
    return {**metrics, "loss": value if split == "valid" else value + 1.0}

  monkeypatch.setattr(train, "evaluate", scripted)


def _config(**train_fields):
  return tiny_config(**{"num_steps": 20, "eval_every": 5, "checkpoint_every": 10,
                        "keep_checkpoints": 1, **train_fields})


def test_the_best_evaluation_is_kept_beside_the_latest_checkpoints(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  _script_valid_loss(monkeypatch, {5: 3.0, 10: 1.0, 15: 1.0, 20: 2.0})  # A tie: the earlier.
  metrics = train.train_and_evaluate(_config(), workdir)
  best = metrics["best"]
  assert {k: best[k] for k in ("step", "metric", "mode", "value")} == {
      "step": 10, "metric": "valid/loss", "mode": "min", "value": 1.0}
  assert sorted(best["metrics"]) == ["test/loss", "test/mse", "valid/loss", "valid/mse"]
  assert best["metrics"]["test/loss"] == 2.0
  assert json.loads((tmp_path / "metrics.json").read_text())["best"] == best
  assert checkpoints.saved_steps(os.path.join(workdir, "checkpoints")) == [20]
  assert checkpoints.saved_steps(os.path.join(workdir, best_checkpoint.DIRECTORY)) == [10]
  # Restored: the state of step 10, whose real validation mse is the recorded one.
  loaded = run.load_run(workdir, checkpoint="best")
  assert int(loaded.state.step) == 10
  evaluated = evaluation.evaluate_run(workdir, "valid", "best")
  assert evaluated["step"] == 10
  assert evaluated["metrics"]["valid/mse"] == pytest.approx(best["metrics"]["valid/mse"],
                                                             rel=1e-6)
  latest = run.load_run(workdir)
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, loaded.state.params,
                                              latest.state.params)))


def test_a_resumed_run_keeps_the_best_so_far(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  _script_valid_loss(monkeypatch, {5: 3.0, 10: 1.0, 15: 2.0, 20: 1.5, 25: 0.5})
  assert train.train_and_evaluate(_config(num_steps=15), workdir)["best"]["step"] == 10
  kept = best_checkpoint.BestCheckpoint(workdir, "valid/loss")
  assert (kept.record["step"], kept.record["value"]) == (10, 1.0)
  kept.close()
  # 1.5 at step 20 is worse than the 1.0 of step 10: a run that forgot would keep step 20.
  assert train.train_and_evaluate(_config(num_steps=20), workdir)["best"]["step"] == 10
  metrics = train.train_and_evaluate(_config(num_steps=25), workdir)
  assert (metrics["best"]["step"], metrics["best"]["value"]) == (25, 0.5)
  assert checkpoints.saved_steps(os.path.join(workdir, best_checkpoint.DIRECTORY)) == [25]


def test_a_changed_select_metric_is_tracked_again(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  _script_valid_loss(monkeypatch, {5: 3.0, 10: 1.0, 15: 2.0, 20: 2.5})
  train.train_and_evaluate(_config(num_steps=10), workdir)
  metrics = train.train_and_evaluate(_config(select_mode="max"), workdir)  # May change.
  assert (metrics["best"]["step"], metrics["best"]["mode"]) == (20, "max")


def _saved_params(workdir, directory, step):
  manager = ocp.CheckpointManager(os.path.join(workdir, directory))
  return jax.tree.map(np.asarray,
                      manager.restore(step, args=ocp.args.StandardRestore())["params"])


@pytest.mark.parametrize("restore", [True, False])
def test_a_plateau_cut_goes_back_to_the_best_parameters(tmp_path, monkeypatch, restore):
  workdir = str(tmp_path)
  # Best at step 5, none at 10: a cut there (patience 1); 15 and 20 improve again.
  _script_valid_loss(monkeypatch, {5: 1.0, 10: 2.0, 15: 0.5, 20: 0.4})
  cfg = _config(checkpoint_every=5, keep_checkpoints=5)
  s = cfg.schedule
  s.name, s.plateau_patience, s.plateau_restore_best = "plateau", 1, restore
  metrics = train.train_and_evaluate(cfg, workdir)
  assert metrics["train/learning_rate"] == pytest.approx(0.1 * cfg.optimizer.learning_rate)
  best = _saved_params(workdir, "checkpoints", 5)  # Evaluated before it was saved.
  at_cut = _saved_params(workdir, "checkpoints", 10)  # Saved after the cut.
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, best, at_cut))) == restore
  later = _saved_params(workdir, "checkpoints", 15)  # Training went on from there.
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, at_cut, later)))


def test_plateau_restore_best_needs_the_plateau_metric_selected(tmp_path):
  cfg = _config()
  cfg.schedule.name, cfg.schedule.plateau_restore_best = "plateau", True
  cfg.train.select_metric = "valid/mse"
  with pytest.raises(ValueError, match="select_metric must equal"):
    train.train_and_evaluate(cfg, str(tmp_path))
  cfg.schedule.name = "constant"
  with pytest.raises(ValueError, match="plateau_restore_best needs"):
    train.train_and_evaluate(cfg, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_select_metric_off_keeps_no_best(tmp_path):
  workdir = str(tmp_path)
  metrics = train.train_and_evaluate(_config(num_steps=5, select_metric=""), workdir)
  assert "best" not in metrics
  assert not os.path.exists(os.path.join(workdir, best_checkpoint.DIRECTORY))
  with pytest.raises(FileNotFoundError, match="select_metric=''"):
    run.load_run(workdir, checkpoint="best")


def test_modes():
  assert best_checkpoint.resolve_mode("valid/accuracy") == "max"
  for metric in ("valid/loss", "valid/mse", "valid/bpc", "test/perplexity"):
    assert best_checkpoint.resolve_mode(metric) == "min"
  assert best_checkpoint.resolve_mode("valid/loss", "max") == "max"
  assert best_checkpoint.improves(1.0, None, "min")
  assert not best_checkpoint.improves(math.nan, None, "min")
  assert not best_checkpoint.improves(1.0, 1.0, "min")
  assert best_checkpoint.improves(2.0, 1.0, "max")


@pytest.mark.parametrize("field,value,message", [
    ("select_metric", "loss", "config.train.select_metric must be"),
    ("select_metric", "train/loss", r"config.train.select_metric='train/loss': this data set"),
    ("select_metric", "valid/accuracy", "not an evaluation metric of this regression task"),
    ("select_mode", "largest", "config.train.select_mode"),
    ("num_epochs", -1.0, "config.train.num_epochs must be"),
    ("num_epochs", 2.0, r"config.train.num_epochs=2.0: .* no steps_per_epoch"),
])
def test_bad_selection_or_epochs_fail_before_anything_is_written(field, value, message,
                                                                tmp_path):
  cfg = _config()
  cfg.train[field] = value
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_a_config_json_from_before_selection_and_epochs_resumes(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(_config(num_steps=10), workdir)
  path = tmp_path / "config.json"
  saved = json.loads(path.read_text())
  for field in ("select_metric", "select_mode", "num_epochs"):
    del saved["train"][field]
  path.write_text(json.dumps(saved))
  metrics = train.train_and_evaluate(_config(), workdir)
  assert metrics["step"] == 20 and metrics["best"]["metric"] == "valid/loss"


def _mnist_config(mnist_dir, **train_fields):
  c = row_mnist.get_config("indrnn")
  c.data.update(dir=mnist_dir, source="files", validation_size=10, batch_size=8,
                eval_batch_size=5, eval_examples=0)
  c.model.update(hidden_size=8, num_layers=1)
  c.train.update(log_every=2, eval_every=4, checkpoint_every=4, **train_fields)
  return c


def test_num_epochs_trains_whole_epochs_and_may_grow_on_resume(mnist_dir, tmp_path):
  workdir = str(tmp_path)
  # 50 training images, 10 held out: 40 // 8 = 5 steps an epoch; 1.5 epochs -> 8 steps.
  metrics = train.train_and_evaluate(_mnist_config(mnist_dir, num_epochs=1.5), workdir)
  assert metrics["step"] == 8
  assert metrics["best"]["metric"] == "valid/loss"
  metrics = train.train_and_evaluate(_mnist_config(mnist_dir, num_epochs=2.0), workdir)
  assert metrics["step"] == 10
