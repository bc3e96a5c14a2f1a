"""Saved runs evaluated and predicted again, for every task: the adding problem
(regression), row MNIST (classification) and a tiny character language model."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import row_mnist
from irnn_jax import data, evaluation, predictions, run, train
from tests.conftest import tiny_config
from tests.test_ptb import tiny_lm_config, write_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(cfg, workdir):
  return str(workdir), train.train_and_evaluate(cfg, str(workdir))


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
  cfg = tiny_config(num_steps=20, eval_every=5, checkpoint_every=10)
  return _train(cfg, tmp_path_factory.mktemp("adding"))


@pytest.fixture(scope="module")
def classification(mnist_dir, tmp_path_factory):
  c = row_mnist.get_config("indrnn")
  c.data.update(dir=mnist_dir, source="files", validation_size=10, batch_size=8,
                eval_batch_size=5, eval_examples=0)
  c.model.update(hidden_size=8, num_layers=1)
  c.optimizer.learning_rate = 1e-2
  c.train.update(num_steps=8, log_every=2, eval_every=2, checkpoint_every=4)
  return _train(c, tmp_path_factory.mktemp("rows"))


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
  root = tmp_path_factory.mktemp("lm")
  cfg = tiny_lm_config(write_corpus(root / "data"), num_steps=12, eval_every=4)
  return _train(cfg, root / "run")


TASKS = ["regression", "classification", "language_model"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("checkpoint", ["latest", "best"])
def test_evaluation_reproduces_the_metrics_of_training(task, checkpoint, request):
  workdir, metrics = request.getfixturevalue(task)
  expected = metrics if checkpoint == "latest" else metrics["best"]["metrics"]
  step = metrics["step"] if checkpoint == "latest" else metrics["best"]["step"]
  for split in ("valid", "test"):
    result = evaluation.evaluate_run(workdir, split, checkpoint)
    assert (result["checkpoint"], result["step"], result["split"]) == (checkpoint, step, split)
    wanted = {k: v for k, v in expected.items() if k.startswith(f"{split}/")}
    assert sorted(result["metrics"]) == sorted(wanted)
    for key, value in wanted.items():
      assert result["metrics"][key] == pytest.approx(value, rel=1e-5), key
  path = evaluation.write_evaluation(result)
  assert path == os.path.join(workdir, f"evaluation_{checkpoint}_test.json")
  assert json.load(open(path)) == result


def test_evaluation_names_an_unknown_split(regression):
  workdir, _ = regression
  with pytest.raises(ValueError, match=r"unknown split 'train'.*\('valid', 'test'\)"):
    evaluation.evaluate_run(workdir, "train")


def test_regression_predictions_are_the_targets_and_outputs(regression, tmp_path):
  workdir, metrics = regression
  path = str(tmp_path / "test.csv")
  result = predictions.write_predictions(workdir, "test", path, checkpoint="best")
  best = metrics["best"]
  assert result["step"] == best["step"] and result["examples"] == 64
  assert result["mse"] == pytest.approx(best["metrics"]["test/mse"], rel=1e-5)
  assert predictions.file_mse(path) == pytest.approx(result["mse"], rel=1e-4)
  rows = list(csv.DictReader(open(path, newline="")))
  assert list(rows[0]) == ["example", "target", "prediction"]
  loaded = run.load_run(workdir, checkpoint="best")
  batch = next(loaded.dataset.eval_batches("test"))
  np.testing.assert_allclose([float(r["target"]) for r in rows[:32]], batch["targets"],
                             rtol=1e-5)
  outputs = loaded.predict(batch["inputs"])
  np.testing.assert_allclose([float(r["prediction"]) for r in rows[:32]], outputs[:, 0],
                             rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="no labels"):
    predictions.file_accuracy(path)


def test_regression_inference_target_file_matches_the_table(regression, tmp_path):
  workdir, _ = regression
  table, neon = str(tmp_path / "test.csv"), str(tmp_path / "test.txt")
  predictions.write_predictions(workdir, "test", table)
  result = predictions.write_predictions(workdir, "test", neon, fmt="inference_target")
  lines = open(neon).read().splitlines()
  assert lines[0] == "inference, target" and len(lines) == 65
  rows = list(csv.DictReader(open(table, newline="")))
  for line, row in zip(lines[1:], rows):
    inference, target = (float(v) for v in line.split(", "))
    assert inference == pytest.approx(float(row["prediction"]), rel=1e-5, abs=1e-7)
    assert target == pytest.approx(float(row["target"]), rel=1e-5)
  assert predictions.file_mse(neon) == pytest.approx(result["mse"], rel=1e-4)
  with pytest.raises(ValueError, match="unknown predictions format 'csv'"):
    predictions.write_predictions(workdir, "test", neon, fmt="csv")


def test_regression_with_several_targets_writes_a_column_each(monkeypatch, tmp_path):
  targets = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]], np.float32)
  outputs = np.array([[1.5, 2.0], [3.0, 3.0], [9.0, 9.0]], np.float32)
  batch = {"targets": targets, "mask": np.array([1.0, 1.0, 0.0], np.float32)}
  monkeypatch.setattr(predictions, "model_outputs", lambda loaded, split: [(batch, outputs)])
  path = str(tmp_path / "k.csv")
  with open(path, "w", newline="") as f:
    examples, summary = predictions.ROWS["regression"](None, "test", None, csv.writer(f))
  assert examples == 2 and summary["mse"] == pytest.approx((0.25 + 1.0) / 4)
  rows = list(csv.DictReader(open(path, newline="")))
  assert list(rows[0]) == ["example", "target_0", "target_1", "prediction_0", "prediction_1"]
  assert predictions.file_mse(path) == pytest.approx(summary["mse"])


def test_classification_predictions_name_the_classes(classification, monkeypatch, tmp_path):
  workdir, metrics = classification
  names = tuple(f"digit {k}" for k in range(10))
  original = data.BUILDERS["mnist"]

  def with_names(cfg, seed, wd):
    dataset = original(cfg, seed, wd)
    dataset.class_names = names
    return dataset

  monkeypatch.setitem(data.BUILDERS, "mnist", with_names)
  path = str(tmp_path / "test.csv")
  result = predictions.write_predictions(workdir, "test", path)
  assert result["accuracy"] == pytest.approx(metrics["test/accuracy"], abs=1e-9)
  assert predictions.file_accuracy(path) == pytest.approx(result["accuracy"], abs=1e-9)
  rows = list(csv.DictReader(open(path, newline="")))
  assert list(rows[0])[:5] == ["example", "label", "predicted", "label_name", "predicted_name"]
  assert all(r["label_name"] == names[int(r["label"])] and
             r["predicted_name"] == names[int(r["predicted"])] for r in rows)


def test_language_model_predictions_are_one_row_per_token(language_model, tmp_path):
  workdir, metrics = language_model
  path = str(tmp_path / "tokens.csv")
  result = predictions.write_predictions(workdir, "test", path)
  evaluated = evaluation.evaluate_run(workdir, "test")
  assert result["examples"] == evaluated["examples"]
  assert result["accuracy"] == pytest.approx(metrics["test/accuracy"], abs=1e-6)
  assert predictions.file_accuracy(path) == pytest.approx(result["accuracy"], abs=1e-9)
  rows = list(csv.DictReader(open(path, newline="")))
  loaded = run.load_run(workdir)
  text_ids = loaded.dataset.ids["test"]
  # Stream order is the order of the split: the labels are its tokens from the second.
  assert [int(r["label"]) for r in rows] == list(text_ids[1:])
  assert all(r["label_name"] == loaded.dataset.vocab[int(r["label"])] for r in rows)
  loss = -np.mean(np.log([float(r["p_label"]) for r in rows]))
  assert loss == pytest.approx(metrics["test/loss"], rel=1e-4)


def _cli(module, *flags):
  return subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT, text=True,
                        capture_output=True, timeout=300)


@pytest.mark.slow
def test_the_commands_print_write_and_fail_in_one_line(regression, tmp_path):
  workdir, metrics = regression
  done = _cli("experiments.evaluate", f"--workdir={workdir}", "--checkpoint=best")
  assert done.returncode == 0, done.stderr
  assert f"at the best checkpoint (step {metrics['best']['step']}), 64 examples" in done.stdout
  assert os.path.exists(os.path.join(workdir, "evaluation_best_test.json"))
  path = str(tmp_path / "p.csv")
  done = _cli("experiments.predict", f"--workdir={workdir}", f"--output={path}")
  assert done.returncode == 0, done.stderr
  assert "mse" in done.stdout and os.path.exists(path)
  done = _cli("experiments.evaluate", f"--workdir={tmp_path / 'nothing'}")
  assert done.returncode == 1
  assert done.stderr.strip().startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
