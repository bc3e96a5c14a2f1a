"""Comparing runs on fake workdirs: config.json, metrics.json and tiny event files."""

import json
import math
import os

import numpy as np
import pytest
from absl import flags

from configs import adding
from experiments import report
from irnn_jax import best_checkpoint, curves, reports
from irnn_jax.summary import MetricWriter


def fake_run(directory, seed=0, fields=None, metrics=None, scalars=None) -> str:
  """A workdir as training leaves it: config.json of configs/adding.py with
  `fields` (dotted -> value) and `seed`, metrics.json, scalars {step: {tag: value}}."""
  os.makedirs(directory, exist_ok=True)
  config = adding.get_config("indrnn")
  config.seed = seed
  for key, value in (fields or {}).items():
    section, name = key.split(".")
    config[section][name] = value
  with open(os.path.join(directory, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  if metrics is not None:
    with open(os.path.join(directory, "metrics.json"), "w") as f:
      json.dump(metrics, f)
  if scalars:
    writer = MetricWriter(directory)
    for step, values in sorted(scalars.items()):
      writer.write_scalars(step, values)
    writer.close()
  return str(directory)


def final_mse(directory, seed, value, **fields):
  return fake_run(directory, seed, fields, {"step": 100, "test/mse": value,
                                            "train_seconds": 60.0})


def load(*dirs):
  return [reports.read_run(d) for d in dirs]


def test_mean_and_sample_std_match_numpy_with_ddof_1(tmp_path):
  xs = [0.11, 0.25, 0.17, 0.4]
  mean, std = reports.mean_std(xs)
  assert mean == pytest.approx(np.mean(xs)) and std == pytest.approx(np.std(xs, ddof=1))
  assert math.isnan(reports.mean_std([0.3])[1])  # No spread from one seed.
  runs = load(*(final_mse(tmp_path / f"s{i}", i, x) for i, x in enumerate(xs)))
  (group,) = reports.group_runs(runs, ["test/mse"])
  assert group.stats("test/mse") == pytest.approx((np.mean(xs), np.std(xs, ddof=1)))
  row = reports.table([group], ["test/mse"]).splitlines()[2]
  assert row == f"| 4 | 0, 1, 2, 3 | {np.mean(xs):.4g} ± {np.std(xs, ddof=1):.2g} | 100 | 60 s |"


def test_grouping_ignores_the_seed_and_logging_only(tmp_path):
  runs = load(final_mse(tmp_path / "a0", 0, 0.1),
              final_mse(tmp_path / "a1", 1, 0.2, **{"train.log_every": 7}),
              final_mse(tmp_path / "a2", 2, 0.3, **{"train.checkpoint_every": 9}),
              final_mse(tmp_path / "lr", 0, 0.4, **{"optimizer.learning_rate": 1e-3}),
              final_mse(tmp_path / "perm", 1, 0.5, **{"data.permutation_seed": 3}))
  groups = reports.group_runs(runs, ["test/mse"])
  assert [[r.name for r in g.runs] for g in groups] == [["a0", "a1", "a2"], ["lr"], ["perm"]]
  assert [r.seed for r in groups[0].runs] == [0, 1, 2]


def test_columns_are_the_fields_that_differ(tmp_path):
  runs = load(final_mse(tmp_path / "a", 0, 0.1, **{"data.seq_len": 10}),
              final_mse(tmp_path / "b", 1, 0.2, **{"data.seq_len": 10, "train.log_every": 5}),
              final_mse(tmp_path / "c", 0, 0.3, **{"model.hidden_size": 8}))
  assert reports.differing_fields(runs) == ["data.seq_len", "model.hidden_size"]
  groups = reports.group_runs(runs, ["test/mse"])
  assert [g.fields for g in groups] == [{"data.seq_len": 10, "model.hidden_size": 128},
                                        {"data.seq_len": 100, "model.hidden_size": 8}]
  assert reports.table(groups, ["test/mse"]).splitlines()[0] == (
      "| seq_len | hidden_size | n | seeds | test/mse | step | wall time |")
  assert reports.run_table(groups, "test/mse").splitlines()[0] == (
      "| run | seq_len | hidden_size | seed | test/mse | step | wall time |")
  assert reports.differing_fields(runs[:2]) == []  # Only seeds and logging differ.


def test_rows_sort_numerically_or_by_the_metric(tmp_path):
  runs = load(*(final_mse(tmp_path / f"t{t}", 0, mse, **{"data.seq_len": t})
                for t, mse in ((10, 0.1), (2, 0.3), (100, 0.2))))
  groups = reports.group_runs(runs, ["test/mse"])
  assert [g.fields["data.seq_len"] for g in reports.sort_groups(groups)] == [2, 10, 100]
  by_metric = reports.sort_groups(groups, "metric", "test/mse")
  assert [g.fields["data.seq_len"] for g in by_metric] == [10, 100, 2]  # Lowest MSE first.
  with pytest.raises(reports.ReportError, match="sort_by='model.cell' is not a field"):
    reports.sort_groups(groups, "model.cell")


def test_sort_puts_numbers_before_text_and_by_field_first(tmp_path):
  runs = load(final_mse(tmp_path / "a", 0, 0.1, **{"data.seq_len": 10, "model.cell": "lstm"}),
              final_mse(tmp_path / "b", 0, 0.1, **{"data.seq_len": 2, "model.cell": "irnn"}),
              final_mse(tmp_path / "c", 0, 0.1, **{"data.seq_len": 2, "model.cell": "lstm"}))
  groups = reports.group_runs(runs, ["test/mse"])
  assert [g.runs[0].name for g in reports.sort_groups(groups)] == ["b", "c", "a"]
  assert [g.runs[0].name for g in reports.sort_groups(groups, "model.cell")] == ["b", "c", "a"]
  assert [reports._order(v) < reports._order("x") for v in (3, 2.5)] == [True, True]


SCALARS = {  # valid/mse is lowest at step 20; test/mse is lowest at step 30.
    10: {"valid/mse": 0.5, "test/mse": 0.6},
    20: {"valid/mse": 0.1, "test/mse": 0.3},
    30: {"valid/mse": 0.2, "test/mse": 0.05},
}


def test_best_checkpoint_from_the_scalars_takes_test_at_the_best_valid_step(tmp_path):
  run = reports.read_run(fake_run(tmp_path, scalars=SCALARS))
  assert reports.best_value(run, "test/mse", "valid/mse", "min") == (20, pytest.approx(0.3))
  assert reports.values([run], "test/mse", "best") == [(20, pytest.approx(0.3))]
  assert reports.values([run], "test/mse", "final") == [(30, pytest.approx(0.05))]
  # The old "best of the curve itself": select the metric it reports.
  assert reports.values([run], "test/mse", "best", select="test/mse") == [
      (30, pytest.approx(0.05))]
  assert reports.values([run], "test/mse", "best", mode="max") == [(10, pytest.approx(0.6))]


def test_best_accuracy_is_the_highest_and_ties_take_the_earliest_step(tmp_path):
  run = reports.read_run(fake_run(tmp_path, scalars={
      1: {"valid/accuracy": 0.5, "test/accuracy": 0.4},
      2: {"valid/accuracy": 0.9, "test/accuracy": 0.8},
      3: {"valid/accuracy": 0.9, "test/accuracy": 0.85}}))
  assert best_checkpoint.resolve_mode("valid/accuracy") == "max" and best_checkpoint.resolve_mode("valid/bpc") == "min"
  assert reports.values([run], "test/accuracy", "best") == [(2, pytest.approx(0.8))]


def test_best_checkpoint_from_metrics_json_wins_over_the_scalars(tmp_path):
  best = {"step": 10, "metric": "valid/mse", "mode": "min", "value": 0.05,
          "metrics": {"valid/mse": 0.05, "test/mse": 0.07}}
  run = reports.read_run(fake_run(tmp_path, metrics={"step": 30, "test/mse": 0.05,
                                                     "best": best}, scalars=SCALARS))
  assert reports.values([run], "test/mse", "best") == [(10, 0.07)]
  # An entry for another metric or mode is passed over for the scalars.
  assert reports.values([run], "test/mse", "best", mode="max") == [(10, pytest.approx(0.6))]
  assert reports.values([run], "test/mse", "best", select="test/mse") == [
      (30, pytest.approx(0.05))]


def test_final_is_metrics_json_unless_the_scalars_are_newer(tmp_path):
  done = reports.read_run(fake_run(tmp_path / "done", metrics={"step": 30, "test/mse": 0.04},
                                   scalars=SCALARS))
  assert reports.final_value(done, "test/mse") == (30, 0.04)
  resumed = reports.read_run(fake_run(tmp_path / "resumed", scalars=SCALARS,
                                      metrics={"step": 20, "test/mse": 0.3}))
  assert reports.final_value(resumed, "test/mse") == (30, pytest.approx(0.05))
  training = reports.read_run(fake_run(tmp_path / "training", scalars=SCALARS))
  assert reports.final_value(training, "test/mse") == (30, pytest.approx(0.05))


def test_errors_name_the_directory_and_the_metric(tmp_path):
  os.makedirs(tmp_path / "empty")
  with pytest.raises(reports.ReportError, match="empty is not a run directory"):
    reports.read_run(str(tmp_path / "empty"))
  with pytest.raises(reports.ReportError, match="missing is not a directory"):
    reports.read_run(str(tmp_path / "missing"))
  runs = load(fake_run(tmp_path / "a", scalars=SCALARS),
              final_mse(tmp_path / "b", 1, 0.2))
  with pytest.raises(reports.ReportError,
                     match="no run has test/accuracy; they have: test/mse, valid/mse"):
    reports.group_runs(runs, ["test/accuracy"])
  with pytest.raises(reports.ReportError, match="b lacks test/mse and valid/mse"):
    reports.group_runs(runs, ["test/mse"], at="best")


def test_curves_are_drawn_per_group(tmp_path):
  runs = load(*(fake_run(tmp_path / f"s{seed}", seed, scalars=SCALARS) for seed in (0, 1)),
              fake_run(tmp_path / "t10", 0, {"data.seq_len": 10}, scalars=SCALARS))
  groups = reports.group_runs(runs, ["test/mse"], at="best")
  assert [g.label for g in groups] == ["seq_len=100", "t10"]  # One run: its name.
  output = str(tmp_path / "curves.png")
  curves.plot(groups, output, "test/mse", panel_by="data.seq_len", baseline=0.1667)
  assert os.path.getsize(output) > 0
  with pytest.raises(reports.ReportError, match="panel_by='data.seqlen'"):
    curves.plot(groups, output, "test/mse", panel_by="data.seqlen")


def test_mean_and_range_are_over_the_steps_every_run_has():
  a = [(0, 1.0, 0.5), (10, 2.0, 0.7), (20, 3.0, 0.9)]
  b = [(0, 1.0, 0.3), (10, 2.0, 0.9)]
  steps, mean, low, high = curves.mean_and_range([a, b])
  np.testing.assert_array_equal(steps, [0, 10])
  np.testing.assert_allclose(mean, [0.4, 0.8])
  np.testing.assert_allclose(low, [0.3, 0.7])
  np.testing.assert_allclose(high, [0.5, 0.9])


def test_spread_plot_with_a_reference_curve(tmp_path):
  runs = load(*(fake_run(tmp_path / f"s{seed}", seed, scalars=SCALARS) for seed in (0, 1)))
  groups = reports.group_runs(runs, ["test/mse"], at="final")
  path = tmp_path / "theirs.csv"
  path.write_text("step,value\n0,0.5\n10,0.25\n")
  steps, values = curves.read_reference(str(path))
  assert (steps, values) == ([0.0, 10.0], [0.5, 0.25])
  output = str(tmp_path / "curves.png")
  curves.plot(groups, output, "test/mse", spread=True, reference=(steps, values, "theirs"))
  assert os.path.getsize(output) > 0
  path.write_text("epoch,accuracy\n1,0.5\n")
  with pytest.raises(reports.ReportError, match="theirs.csv: expected a CSV file with the header"):
    curves.read_reference(str(path))


@pytest.fixture
def report_flags():
  """experiments.report's flags parsed from a list, reset afterwards."""
  def parse(*args):
    flags.FLAGS(["report", *args])
  yield parse
  flags.FLAGS.unparse_flags()


def test_report_command_prints_the_grouped_table(tmp_path, report_flags, capsys):
  dirs = [final_mse(tmp_path / f"t{t}_s{s}", s, 0.1 * t + 0.01 * s, **{"data.seq_len": t})
          for t in (10, 2) for s in (0, 1, 2)]
  (tmp_path / "results.md").write_text("a sweep's table")  # Files are passed over.
  report_flags("--metric=test/mse", "--per_run")
  report.main(["report", *dirs, str(tmp_path / "results.md")])
  out = capsys.readouterr().out
  assert "| t2_s0 | 2 | 0 | 0.2 | 100 | 60 s |" in out
  mean, std = np.mean([0.2, 0.21, 0.22]), np.std([0.2, 0.21, 0.22], ddof=1)
  rows = out.split("\n\n")[1].splitlines()
  assert rows[2] == f"| 2 | 3 | 0, 1, 2 | {mean:.4g} ± {std:.2g} | 100 | 60 s |"
  assert rows[3].startswith("| 10 | 3 | 0, 1, 2 | 1.01 ± ")
  report_flags("--metric=test/accuracy")
  with pytest.raises(SystemExit, match="no run has test/accuracy; they have: test/mse"):
    report.main(["report", *dirs])
