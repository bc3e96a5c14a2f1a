"""What a workdir guarantees: a config record, one run at a time, checkpoints
that fall back, non-finite stops that keep good parameters, interrupts that
save, and errors a person can read. docs/reliability.md lists them."""

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from irnn_jax import checkpoints, run, train, workdir
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**train_fields):
  return tiny_config("irnn", **{"num_steps": 20, "eval_every": 10, "checkpoint_every": 10,
                                **train_fields})


def _read(path):
  with open(path, "rb") as f:
    return f.read()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """A 20-step run straight through: (workdir, metrics)."""
  path = str(tmp_path_factory.mktemp("straight"))
  return path, train.train_and_evaluate(_config(), path)


def _without_times(metrics: dict) -> dict:
  return {k: v for k, v in metrics.items() if k not in ("train_seconds",
                                                       "train/steps_per_second")}


def test_a_changed_config_is_refused_before_anything_is_written(tmp_path):
  path = str(tmp_path)
  train.train_and_evaluate(_config(num_steps=10), path)
  before = {name: _read(os.path.join(path, name)) for name in ("config.json", "metrics.json")}
  changed = _config(num_steps=20)
  changed.optimizer.learning_rate = 0.1
  changed.model.hidden_size = 8
  with pytest.raises(workdir.WorkdirError) as error:
    train.train_and_evaluate(changed, path)
  message = str(error.value)
  assert "config.optimizer.learning_rate: 0.0002 -> 0.1" in message
  assert "config.model.hidden_size: 16 -> 8" in message and "--allow_config_change" in message
  assert "num_steps" not in message  # A budget may change.
  assert {n: _read(os.path.join(path, n)) for n in before} == before
  assert not os.path.exists(os.path.join(path, workdir.HISTORY_FILE))
  assert not os.path.exists(os.path.join(path, workdir.LOCK_FILE))


def test_an_allowed_change_is_recorded_and_applies_from_the_resumed_step(tmp_path):
  path = str(tmp_path)
  train.train_and_evaluate(_config(num_steps=10), path)
  changed = _config(num_steps=20)
  changed.optimizer.learning_rate = 1e-3
  metrics = train.train_and_evaluate(changed, path, allow_config_change=True)
  assert metrics["step"] == 20
  (record,) = [json.loads(line) for line in open(os.path.join(path, workdir.HISTORY_FILE))]
  assert record["step"] == 10
  assert record["changes"] == {"optimizer.learning_rate": [2e-4, 1e-3], "train.num_steps": [10, 20]}
  saved = json.load(open(os.path.join(path, "config.json")))
  assert saved["optimizer"]["learning_rate"] == 1e-3 and saved["train"]["num_steps"] == 20


def test_a_longer_budget_resumes_and_is_logged_only(tmp_path, uninterrupted):
  path = str(tmp_path)
  train.train_and_evaluate(_config(num_steps=10), path)
  metrics = train.train_and_evaluate(_config(num_steps=20), path)
  assert _without_times(metrics) == _without_times(uninterrupted[1])
  assert json.load(open(os.path.join(path, "config.json")))["train"]["num_steps"] == 20
  assert not os.path.exists(os.path.join(path, workdir.HISTORY_FILE))


def test_an_allowed_change_of_the_model_names_the_parameters_that_do_not_fit(tmp_path):
  path = str(tmp_path)
  train.train_and_evaluate(_config(num_steps=10), path)
  before = _read(os.path.join(path, "config.json"))
  wider = _config()
  wider.model.hidden_size = 8
  with pytest.raises(checkpoints.CheckpointMismatch, match=r"\(16, 16\).*\(8, 8\)"):
    train.train_and_evaluate(wider, path, allow_config_change=True)
  assert checkpoints.saved_steps(os.path.join(path, "checkpoints")) == [10]  # Nothing moved,
  assert _read(os.path.join(path, "config.json")) == before  # nothing recorded.
  assert not os.path.exists(os.path.join(path, workdir.HISTORY_FILE))


def test_a_rejected_config_leaves_no_workdir(tmp_path):
  bad = _config()
  bad.model.cell = "lstmm"
  with pytest.raises(ValueError, match="config.model.cell"):
    train.train_and_evaluate(bad, str(tmp_path / "run"))
  bad = _config()
  bad.data.seq_len = 1
  with pytest.raises(ValueError, match="config.data.seq_len"):
    train.train_and_evaluate(bad, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_the_lock_refuses_a_second_run_and_takes_over_a_stale_one(tmp_path, caplog):
  path = str(tmp_path)
  with workdir.Lock(path):
    holder = json.load(open(os.path.join(path, workdir.LOCK_FILE)))
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(workdir.WorkdirError, match=rf"in use by process {os.getpid()} on"):
      workdir.Lock(path).__enter__()
  assert not os.path.exists(os.path.join(path, workdir.LOCK_FILE))  # Released.
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True).stdout.strip()
  with open(os.path.join(path, workdir.LOCK_FILE), "w") as f:
    json.dump({"pid": int(dead), "host": socket.gethostname()}, f)
  with workdir.Lock(path):
    assert json.load(open(os.path.join(path, workdir.LOCK_FILE)))["pid"] == os.getpid()
  assert f"left by process {dead}, which is gone" in caplog.text


def _corrupt(step_dir: str, how: str):
  files = [os.path.join(d, f) for d, _, names in os.walk(step_dir) for f in names]
  if how == "truncated":
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
      f.truncate(os.path.getsize(biggest) // 3)
  elif how == "garbled":
    for path in files:
      if path.endswith("_METADATA"):
        with open(path, "wb") as f:
          f.write(b"\x00{not json")
  elif how == "missing":
    for path in files:
      if "ocdbt.process_0" in path or path.endswith("manifest.ocdbt"):
        os.remove(path)


# A failed restore leaves no traceback of orbax's pending reads on stderr.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["truncated", "garbled", "missing"])
def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(tmp_path, how, caplog,
                                                                     uninterrupted):
  path = str(tmp_path)
  train.train_and_evaluate(_config(), path)
  _corrupt(os.path.join(path, "checkpoints", "20"), how)
  os.remove(os.path.join(path, "metrics.json"))
  metrics = train.train_and_evaluate(_config(), path)  # Resumes at 10, trains 10..20 again.
  assert _without_times(metrics) == _without_times(uninterrupted[1])
  assert "The checkpoint of step 20 cannot be restored" in caplog.text
  moved = os.listdir(os.path.join(path, checkpoints.UNREADABLE))
  assert len(moved) == 1 and moved[0].startswith("20.")
  assert checkpoints.saved_steps(os.path.join(path, "checkpoints")) == [10, 20]


def _unraisable(error: BaseException):
  return types.SimpleNamespace(exc_type=type(error), exc_value=error,
                               exc_traceback=error.__traceback__, err_msg=None, object=None)


def test_only_callbacks_refused_by_a_closed_event_loop_are_dropped(monkeypatch):
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(lambda: None)
  except RuntimeError as e:
    refused = e
  try:
    raise RuntimeError("Event loop is closed")  # The same words from elsewhere.
  except RuntimeError as e:
    elsewhere = e
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  checkpoints._drop_callbacks_on_closed_loops()
  checkpoints._drop_callbacks_on_closed_loops()  # Installed once, not wrapped twice.
  for error in (refused, elsewhere, ValueError("other")):
    sys.unraisablehook(_unraisable(error))
  passed = [u.exc_value for u in seen]
  assert len(passed) == 2 and passed[0] is elsewhere and isinstance(passed[1], ValueError)


def test_no_readable_checkpoint_is_an_error_that_lists_them(tmp_path):
  path = str(tmp_path)
  train.train_and_evaluate(_config(), path)
  for step in (10, 20):
    _corrupt(os.path.join(path, "checkpoints", str(step)), "garbled")
  with pytest.raises(checkpoints.CheckpointError, match=r"steps tried: \[20, 10\]"):
    train.train_and_evaluate(_config(num_steps=30), path)


def test_a_diverged_run_keeps_finite_checkpoints_and_resumes_with_a_lower_rate(tmp_path):
  path = str(tmp_path)
  cfg = _config(num_steps=60, max_nonfinite_in_row=5)
  train.train_and_evaluate(_config(num_steps=10), path)  # A good checkpoint at step 10.
  cfg.optimizer.learning_rate = 1e6
  with pytest.raises(FloatingPointError, match="at step 10, holds finite parameters"):
    train.train_and_evaluate(cfg, path, allow_config_change=True)
  assert checkpoints.saved_steps(os.path.join(path, "checkpoints")) == [10]
  loaded = run.load_run(path)  # The kept checkpoint evaluates to a finite loss.
  eval_step = train.make_eval_step(loaded.model, loaded.spec.task)
  sums = [eval_step(loaded.state.params, loaded.state.batch_stats, batch, None)[0]
          for batch in loaded.dataset.eval_batches("test")]
  assert all(np.isfinite(float(s["loss"])) for s in sums)
  cfg.optimizer.learning_rate = 1e-4
  metrics = train.train_and_evaluate(cfg, path, allow_config_change=True)
  assert metrics["step"] == 60 and np.isfinite(metrics["test/loss"])


def _main(path: str, *flags, **popen):
  command = [sys.executable, "-m", "experiments.main", "--config=configs/adding.py:lstm",
             f"--workdir={path}", "--config.data.seq_len=12", "--config.model.hidden_size=16",
             "--config.data.eval_examples=64", "--config.data.eval_batch_size=32", *flags]
  return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **popen)


def _wait_for(path: str, seconds: float = 300):
  deadline = time.time() + seconds
  while not os.path.exists(path):
    assert time.time() < deadline, f"{path} did not appear"
    time.sleep(0.2)


@pytest.mark.slow
def test_errors_are_one_message_without_a_traceback(tmp_path):
  out, err = _main(str(tmp_path / "run"), "--config.model.norm=batch").communicate(timeout=300)
  assert "error: config.model.norm: unknown value 'batch'" in err
  assert "Traceback" not in err and not os.path.exists(tmp_path / "run")
  _, err = _main(str(tmp_path / "run"), "--config.model.norm=batch",
                 "--verbose").communicate(timeout=300)
  assert "Traceback" in err
  for flag, message in [
      ("--config.model.hiden_size=4", 'error: --config.model.hiden_size=4 names no config '
                                      'field: Did you mean "hidden_size"'),
      ("--config.model.hidden_size=abc", "error: flag --config.model.hidden_size=abc"),
      ("--config=configs/adding.py:lstmm", "error: ValueError: unknown adding variant 'lstmm'")]:
    proc = _main(str(tmp_path / "run"), flag)
    _, err = proc.communicate(timeout=300)
    assert message in err and "Traceback" not in err and proc.returncode == 1, err[-2000:]
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.slow
def test_sigint_saves_the_current_step_and_exits_130(tmp_path):
  path = str(tmp_path)
  proc = _main(path, "--config.train.num_steps=100000", "--config.train.log_every=10")
  _wait_for(os.path.join(path, workdir.LOCK_FILE))
  time.sleep(5)  # Compiled and training.
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, err[-2000:]
  step = checkpoints.saved_steps(os.path.join(path, "checkpoints"))[-1]  # The interrupted one.
  assert f"stopped at step {step}, checkpoint saved" in err
  assert not os.path.exists(os.path.join(path, workdir.LOCK_FILE))


@pytest.mark.slow
def test_two_processes_on_one_workdir(tmp_path):
  path = str(tmp_path)
  first = _main(path, "--config.train.num_steps=100000")
  _wait_for(os.path.join(path, workdir.LOCK_FILE))
  second = _main(path, "--config.train.num_steps=100000")
  _, err = second.communicate(timeout=300)
  first.terminate()
  _, first_err = first.communicate(timeout=300)
  assert second.returncode == 1 and f"in use by process {first.pid}" in err
  assert first.returncode == 143, first_err[-2000:]


@pytest.mark.slow
def test_kill_9_at_random_moments_resumes_to_the_same_metrics(tmp_path):
  """Killed with -9 five times at random moments (saves included: a checkpoint
  every 5 steps), the run ends with the metrics of one that never stopped."""
  flags = ("--config.train.num_steps=300", "--config.train.checkpoint_every=5",
           "--config.train.eval_every=50", "--config.train.log_every=5")
  straight = str(tmp_path / "straight")
  assert _main(straight, *flags).wait(timeout=600) == 0
  expected = _without_times(json.load(open(os.path.join(straight, "metrics.json"))))
  path, rng = str(tmp_path / "killed"), random.Random(0)
  saved = lambda: checkpoints.saved_steps(os.path.join(path, "checkpoints"))
  for _ in range(5):
    before = max(saved(), default=0)
    proc = _main(path, *flags)
    deadline = time.time() + 300
    while max(saved(), default=0) <= before:  # Training, and saving every 5 steps.
      assert time.time() < deadline and proc.poll() is None
      time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.3))
    proc.kill()
    proc.wait()
  assert not os.path.exists(os.path.join(path, "metrics.json"))  # Not finished yet.
  assert _main(path, *flags).wait(timeout=600) == 0
  assert _without_times(json.load(open(os.path.join(path, "metrics.json")))) == expected
