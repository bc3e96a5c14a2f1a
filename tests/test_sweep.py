"""Sweeps: override lists, point names, seed axes, the runner with real child processes,
reports of their runs."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from configs import adding, permuted_mnist, sequential_mnist
from experiments import sweep
from irnn_jax import curves, reports, sweeps, workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A config file for tiny sweeps: each child trains 4 steps of a 1 x 8 network.
TINY_CONFIG = '''
from configs import adding
from irnn_jax import sweeps


def get_config(variant="indrnn"):
  c = adding.get_config(variant)
  c.data.update(seq_len=6, batch_size=8, eval_examples=16, eval_batch_size=16)
  c.model.update(num_layers=1, hidden_size=8)
  c.train.update(num_steps=4, log_every=2, eval_every=4, checkpoint_every=4)
  return c


def get_sweep(name="indrnn"):
  if name == "with_failure":  # hidden_size=-1 passes the up-front check, fails in training.
    return [{"data.seq_len": 5}, {"model.hidden_size": -1}]
  if name == "typo":
    return [{"data.seq_len": 5}, {"model.hiden_size": 4}]
  if name == "seeds":  # Two seeds at T=4, three at T=6.
    return [{"data.seq_len": 4, "seed": 0}, {"data.seq_len": 4, "seed": 1},
            *sweeps.over_seeds([{"data.seq_len": 6}], (0, 1, 2))]
  return [{"data.seq_len": 4}, {"data.seq_len": 6}, {"variant": "irnn", "data.seq_len": 6}]
'''


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
  path = tmp_path_factory.mktemp("config") / "tiny.py"
  path.write_text(TINY_CONFIG)
  return str(path)


@pytest.fixture(scope="module", autouse=True)
def in_repo_root():
  """Children run `python -m experiments.main` from the current directory."""
  with pytest.MonkeyPatch.context() as m:
    m.chdir(REPO)
    yield


def _rows(workdir):
  with open(os.path.join(workdir, "results.csv")) as f:
    return list(csv.DictReader(f))


def test_product_and_zip():
  assert sweeps.product({"data.seq_len": [1, 2]}, variant=["a", "b"]) == [
      {"data.seq_len": 1, "variant": "a"}, {"data.seq_len": 1, "variant": "b"},
      {"data.seq_len": 2, "variant": "a"}, {"data.seq_len": 2, "variant": "b"}]
  assert sweeps.zip_fields({"data.seq_len": (1, 2)}, variant=("a", "b")) == [
      {"data.seq_len": 1, "variant": "a"}, {"data.seq_len": 2, "variant": "b"}]
  with pytest.raises(ValueError, match="equal length"):
    sweeps.zip_fields({"data.seq_len": [1, 2]}, variant=["a"])
  with pytest.raises(TypeError, match="list of values"):
    sweeps.product(variant="indrnn")


def test_config_sweeps_expand_to_the_expected_overrides():
  assert adding.get_sweep("figure2") == [
      {"data.seq_len": 1000, "variant": "irnn"}, {"data.seq_len": 1000, "variant": "indrnn"},
      {"data.seq_len": 1000, "variant": "lstm"}, {"data.seq_len": 500, "variant": "irnn"},
      {"data.seq_len": 500, "variant": "indrnn"}, {"data.seq_len": 500, "variant": "lstm"},
      {"data.seq_len": 100, "variant": "irnn"}, {"data.seq_len": 100, "variant": "indrnn"},
      {"data.seq_len": 100, "variant": "lstm"}]
  assert adding.get_sweep("t5000") == [{"variant": "indrnn", "data.seq_len": 5000}]
  assert adding.get_sweep("smoke") == [
      {"variant": "irnn", "data.seq_len": 50}, {"variant": "lstm", "data.seq_len": 50}]
  assert adding.get_sweep("seeds") == [
      {"variant": "indrnn", "seed": 0}, {"variant": "indrnn", "seed": 1},
      {"variant": "indrnn", "seed": 2}, {"variant": "irnn", "seed": 0},
      {"variant": "irnn", "seed": 1}, {"variant": "irnn", "seed": 2}]
  assert adding.get_sweep("lstm") == [
      {"variant": "lstm", "data.seq_len": 100}, {"variant": "lstm", "data.seq_len": 500},
      {"variant": "lstm", "data.seq_len": 1000}, {"variant": "lstm", "data.seq_len": 5000}]
  for module in (sequential_mnist, permuted_mnist):
    assert module.get_sweep("indrnn") == [
        {"variant": "irnn"}, {"variant": "indrnn"}, {"variant": "lstm"}]
    assert module.get_sweep("res_indrnn_paper") == [
        {"variant": "irnn_paper"}, {"variant": "indrnn_paper"}, {"variant": "lstm_paper"}]


def test_plan_checks_every_point_and_names_its_directory(tmp_path):
  points = sweep.plan("configs/adding.py", "indrnn", "figure2", str(tmp_path),
                      {"train.num_steps": 3})
  assert [p.name for p in points[:2]] == ["seq_len=1000,variant=irnn",
                                          "seq_len=1000,variant=indrnn"]
  assert points[0].variant == "irnn"
  assert points[0].fields == {"train.num_steps": 3, "data.seq_len": 1000}
  argv = sweep.child_argv("configs/adding.py", points[0])
  assert argv[1:] == ["-m", "experiments.main", "--config=configs/adding.py:irnn",
                      f"--workdir={tmp_path}/seq_len=1000,variant=irnn",
                      "--config.train.num_steps=3", "--config.data.seq_len=1000"]
  assert [p.variant for p in sweep.plan("configs/sequential_mnist.py", "indrnn", None,
                                        str(tmp_path), {})] == ["irnn", "indrnn", "lstm"]


def test_over_seeds_repeats_each_point_once_per_seed():
  assert sweeps.over_seeds([{"variant": "irnn"}, {}], (0, 1)) == [
      {"variant": "irnn", "seed": 0}, {"variant": "irnn", "seed": 1}, {"seed": 0}, {"seed": 1}]
  with pytest.raises(ValueError, match="already has a 'seed' axis"):
    sweeps.over_seeds([{"seed": 3}], [0, 1])
  with pytest.raises(ValueError, match="repeated seeds"):
    sweeps.over_seeds([{}], [0, 0])
  with pytest.raises(TypeError, match="int seeds"):
    sweeps.over_seeds([{}], ["0"])


def test_a_seed_axis_gives_each_seed_its_own_workdir_and_config(tmp_path):
  points = sweep.plan("configs/adding.py", "indrnn", "smoke", str(tmp_path),
                      {"train.num_steps": 3, "seed": 7}, seeds=(0, 1, 2))
  assert [p.name for p in points] == [
      f"variant={v},seq_len=50,seed={s}" for v in ("irnn", "lstm") for s in (0, 1, 2)]
  assert len({p.workdir for p in points}) == 6
  assert [p.config["seed"] for p in points] == [0, 1, 2] * 2  # The point's seed wins.
  assert len({workdir_lib.config_hash(p.config) for p in points}) == 6
  assert "--config.seed=1" in sweep.child_argv("configs/adding.py", points[1])
  # The same points from a sweep that declares its seeds.
  declared = sweep.plan("configs/adding.py", "indrnn", "seeds", str(tmp_path), {})
  assert [p.name for p in declared[:3]] == [f"variant=indrnn,seed={s}" for s in (0, 1, 2)]
  assert [p.config["seed"] for p in declared] == [0, 1, 2] * 2
  with pytest.raises(ValueError, match="already has a 'seed' axis"):
    sweep.plan("configs/adding.py", "indrnn", "seeds", str(tmp_path), {}, seeds=(0, 1))


def test_a_sweep_over_seeds_adds_their_mean_and_std_to_results(tiny_config, tmp_path, capsys):
  mse = {(4, 0): 0.1, (4, 1): 0.3, (6, 0): 0.2, (6, 1): 0.25, (6, 2): 0.5}

  def launch(config_file, point):  # No training: config.json, then metrics.json.
    with open(os.path.join(point.workdir, "config.json"), "w") as f:
      json.dump(point.config, f)
    metrics = {"step": 4, "test/mse": mse[point.config["data"]["seq_len"], point.config["seed"]]}
    return [sys.executable, "-c", f"import json; json.dump({metrics!r}, "
            f"open({os.path.join(point.workdir, 'metrics.json')!r}, 'w'))"]

  assert sweep.run_sweep(f"{tiny_config}:indrnn", str(tmp_path), sweep="seeds", parallel=2,
                         launch=launch) == 0
  out = capsys.readouterr().out
  assert "Over seeds (mean ± sample std):" in out
  rows = open(os.path.join(tmp_path, "results.md")).read().split("Over seeds")[1].splitlines()
  assert rows[2] == "| seq_len | n | seeds | test/mse | step | wall time |"
  assert rows[4] == f"| 4 | 2 | 0, 1 | 0.2 ± {np.std([0.1, 0.3], ddof=1):.2g} | 4 | 0 s |"
  std = np.std([0.2, 0.25, 0.5], ddof=1)
  assert rows[5] == f"| 6 | 3 | 0, 1, 2 | {np.mean([0.2, 0.25, 0.5]):.4g} ± {std:.2g} | 4 | 0 s |"


def test_point_names_are_stable_and_filesystem_safe():
  assert sweeps.point_name({}) == "default"
  assert sweeps.point_name({"variant": "lstm", "optimizer.learning_rate": 1e-3}) == (
      "variant=lstm,learning_rate=0.001")
  # The whole dotted name where the last parts repeat; no "/" or spaces.
  assert sweeps.point_name({"a.x": 1, "b.x": "p/q r"}) == "a.x=1,b.x=p_q_r"
  long = {"data.dir": "d" * 300}
  assert sweeps.point_name(long) == sweeps.point_name(dict(long))
  assert len(sweeps.point_name(long)) <= sweeps.MAX_NAME_LEN


def test_unknown_field_raises_naming_it(tiny_config, tmp_path):
  cfg = adding.get_config("indrnn")
  with pytest.raises(ValueError, match="'model.hiden_size'.*did you mean 'hidden_size'"):
    sweeps.apply_overrides(cfg, {"model.hiden_size": 4})
  with pytest.raises(ValueError, match="config has no field 'modle'"):
    sweeps.apply_overrides(cfg, {"modle.hidden_size": 4})
  with pytest.raises(TypeError, match="config.model.cell"):
    sweeps.apply_overrides(cfg, {"model.cell": 3})
  sweeps.apply_overrides(cfg, {"model.hidden_size": 4, "variant": "lstm"})
  assert cfg.model.hidden_size == 4
  # A typo in one point stops the sweep before anything runs.
  with pytest.raises(ValueError, match="sweep point hiden_size=4: unknown config field"):
    sweep.run_sweep(f"{tiny_config}:indrnn", str(tmp_path / "sweep"), sweep="typo")
  assert not (tmp_path / "sweep").exists()


@pytest.fixture(scope="module")
def tiny_sweep(tiny_config, tmp_path_factory):
  """Three real points, two at a time; the sweep's directory."""
  workdir = str(tmp_path_factory.mktemp("sweep"))
  assert sweep.run_sweep(f"{tiny_config}:indrnn", workdir, parallel=2,
                         overrides={"train.num_steps": 3}) == 0
  return workdir


@pytest.mark.slow
def test_three_points_finish_and_a_rerun_does_no_new_work(tiny_config, tiny_sweep):
  rows = _rows(tiny_sweep)
  assert [r["name"] for r in rows] == ["seq_len=4", "seq_len=6", "variant=irnn,seq_len=6"]
  assert [r["status"] for r in rows] == ["finished"] * 3
  assert [r["step"] for r in rows] == ["3"] * 3  # The global override reached every point.
  assert all(float(r["test/mse"]) > 0 and float(r["wall_s"]) > 0 for r in rows)
  assert [r["variant"] for r in rows] == ["", "", "irnn"]
  assert '"cell": "irnn"' in open(os.path.join(tiny_sweep, "variant=irnn,seq_len=6",
                                               "config.json")).read()
  assert os.path.exists(os.path.join(tiny_sweep, "sweep.json"))
  assert "| name | data.seq_len | variant | status |" in open(
      os.path.join(tiny_sweep, "results.md")).read()

  files = [os.path.join(tiny_sweep, r["name"], f) for r in rows for f in ("metrics.json", "log.txt")]
  before = [os.path.getmtime(f) for f in files]
  result = subprocess.run(
      [sys.executable, "-m", "experiments.sweep", f"--config={tiny_config}:indrnn",
       f"--workdir={tiny_sweep}", "--parallel=2", "--config.train.num_steps=3"],
      capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert "3 already finished, 0 to run" in result.stdout
  assert "start" not in result.stdout
  assert [os.path.getmtime(f) for f in files] == before
  assert [r["status"] for r in _rows(tiny_sweep)] == ["finished"] * 3


@pytest.mark.slow
def test_a_rerun_with_other_overrides_runs_the_changed_points(tiny_config, tmp_path, capsys):
  """Points are keyed by their resolved config: another model runs afresh (the
  earlier run kept beside it), a longer budget resumes, the same config is done."""
  workdir = str(tmp_path)
  config = f"{tiny_config}:indrnn"
  assert sweep.run_sweep(config, workdir, overrides={"train.num_steps": 3}) == 0
  assert sweep.run_sweep(config, workdir, overrides={"train.num_steps": 3,
                                                     "model.hidden_size": 4}) == 0
  out = capsys.readouterr().out
  assert out.count("changed   ") == 3 and "model.hidden_size 8 -> 4; runs afresh" in out
  kept = [n for n in os.listdir(workdir) if n.startswith("seq_len=4.")]
  assert len(kept) == 1 and os.path.exists(os.path.join(workdir, kept[0], "metrics.json"))
  # 4 units: IndRNN 2 * 4 + 4 + 4 and IRNN 2 * 4 + 4 + 16, each with a head of 4 + 1.
  assert [r["parameters"] for r in _rows(workdir)] == ["21", "21", "33"]
  assert sweep.run_sweep(config, workdir, overrides={"train.num_steps": 5,
                                                     "model.hidden_size": 4}) == 0
  out = capsys.readouterr().out
  assert out.count("resume    ") == 3 and "train.num_steps 3 -> 5" in out
  assert [r["step"] for r in _rows(workdir)] == ["5"] * 3
  assert sweep.run_sweep(config, workdir, overrides={"train.num_steps": 5,
                                                     "model.hidden_size": 4}) == 0
  assert "3 already finished, 0 to run" in capsys.readouterr().out


@pytest.mark.slow
def test_failed_point_is_reported_and_the_others_finish(tiny_config, tmp_path, capsys):
  workdir = str(tmp_path)
  assert sweep.run_sweep(f"{tiny_config}:indrnn", workdir, sweep="with_failure",
                         parallel=2, overrides={"train.num_steps": 2}) == 1
  out = capsys.readouterr().out
  assert "FAILED    hidden_size=-1" in out
  assert "config.model.hidden_size must be positive" in out  # The tail of its log.
  assert "failed: ['hidden_size=-1']" in out
  rows = _rows(workdir)
  assert [(r["name"], r["status"]) for r in rows] == [("seq_len=5", "finished"),
                                                      ("hidden_size=-1", "failed")]
  assert rows[0]["step"] == "2" and rows[1]["step"] == ""


# Fake children for the interruption test: no JAX, they either finish at once
# (writing metrics.json) or sleep until stopped.
FAKE_CHILD = """
import json, os, sys, time
workdir, slow = sys.argv[1], sys.argv[2] == "slow"
if slow:
  open(os.path.join(workdir, "started"), "w").write(str(os.getpid()))
  time.sleep(60)
json.dump({"step": 1}, open(os.path.join(workdir, "metrics.json"), "w"))
"""


@pytest.mark.slow
def test_sigterm_stops_the_children_and_a_rerun_continues(tiny_config, tmp_path, capsys):
  workdir = str(tmp_path)
  slow = {"seq_len=6", "variant=irnn,seq_len=6"}

  def launch(config_file, point):
    mode = "slow" if point.name in slow else "fast"
    return [sys.executable, "-c", FAKE_CHILD, point.workdir, mode]

  def stop_when_both_slow_points_run():
    markers = [os.path.join(workdir, name, "started") for name in slow]
    deadline = time.time() + 60
    while not all(map(os.path.exists, markers)) and time.time() < deadline:
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=stop_when_both_slow_points_run, daemon=True).start()
  code = sweep.run_sweep(f"{tiny_config}:indrnn", workdir, parallel=2, launch=launch)
  assert code == 130
  assert "interrupted: 1 of 3 points finished ['seq_len=4']" in capsys.readouterr().out
  for name in slow:  # Stopped and reaped.
    with pytest.raises(ProcessLookupError):
      os.kill(int(open(os.path.join(workdir, name, "started")).read()), 0)
  assert [r["status"] for r in _rows(workdir)] == ["finished", "interrupted", "interrupted"]

  slow.clear()
  assert sweep.run_sweep(f"{tiny_config}:indrnn", workdir, parallel=2, launch=launch) == 0
  out = capsys.readouterr().out
  assert "1 already finished, 2 to run" in out and "start     seq_len=4" not in out
  with open(os.path.join(workdir, "seq_len=4", "log.txt")) as f:
    assert f.read().count("=== ") == 1  # Started once, over both runs.


@pytest.mark.slow
def test_report_reads_the_trainers_event_files(tiny_sweep, tmp_path):
  runs = [reports.read_run(os.path.join(tiny_sweep, name)) for name in ("seq_len=4", "seq_len=6")]
  groups = reports.group_runs(runs, ["test/mse"])
  assert [g.fields for g in groups] == [{"data.seq_len": 4}, {"data.seq_len": 6}]
  assert all(g.results["test/mse"][0][0] == 3 and g.results["test/mse"][0][1] > 0
             for g in groups)
  # Evaluated at step 3 only: the best step is the last.
  best = reports.group_runs(runs, ["test/mse"], at="best")
  assert [g.results for g in best] == [g.results for g in groups]
  output = str(tmp_path / "curves.png")
  curves.plot(groups, output, "test/mse", panel_by="data.seq_len")
  assert os.path.getsize(output) > 0


@pytest.mark.slow
def test_three_seed_sweep_then_report_gives_mean_and_std(tiny_config, tmp_path, capsys):
  workdir = str(tmp_path)
  assert sweep.run_sweep(f"{tiny_config}:indrnn", workdir, sweep="indrnn", parallel=2,
                         overrides={"train.num_steps": 6, "train.eval_every": 2},
                         seeds=(0, 1, 2)) == 0
  names = [f"seq_len={t},seed={s}" for t in (4, 6) for s in (0, 1, 2)]
  assert [r["name"] for r in _rows(workdir)[:6]] == names
  mse = {}
  for name in names:
    with open(os.path.join(workdir, name, "metrics.json")) as f:
      mse[name] = json.load(f)["test/mse"]
  assert len(set(mse.values())) == 6  # Every seed trained its own model.
  assert "Over seeds (mean ± sample std)" in open(os.path.join(workdir, "results.md")).read()

  result = subprocess.run(
      [sys.executable, "-m", "experiments.report", *(os.path.join(workdir, n) for n in names),
       "--metric=test/mse", "--at=best"], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == "| seq_len | n | seeds | test/mse at best valid/mse | step | wall time |"
  runs = [reports.read_run(os.path.join(workdir, n)) for n in names[:3]]
  best = [reports.best_value(r, "test/mse", "valid/mse", "min")[1] for r in runs]
  assert lines[2].startswith(
      f"| 4 | 3 | 0, 1, 2 | {np.mean(best):.4g} ± {np.std(best, ddof=1):.2g} |")
  assert lines[3].startswith("| 6 | 3 | 0, 1, 2 | ")
