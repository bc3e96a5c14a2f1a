"""The workdir as a record: one run at a time, and a config that never changes silently.

`Lock(workdir)` admits one training process per workdir (a file with its pid
and host, created atomically). `check_config(saved, new)` compares a resumed
run's config with the one in config.json: only the fields in `MAY_CHANGE`
may differ, unless the change is allowed, and then it is appended to
config_history.jsonl with the step it applies from.
"""

import hashlib
import json
import os
import socket
import time

from absl import logging

from irnn_jax import configlib

CONFIG_FILE = "config.json"
HISTORY_FILE = "config_history.jsonl"
LOCK_FILE = "lock"
# Fields a resumed run may change without --allow_config_change: budgets,
# intervals and the best-checkpoint metric, which do not change how steps 0..N
# were trained.
MAY_CHANGE = ("train.num_steps", "train.num_epochs", "train.time_budget_minutes",
              "train.log_every", "train.eval_every", "train.checkpoint_every",
              "train.keep_checkpoints", "train.select_metric", "train.select_mode")


class WorkdirError(RuntimeError):
  """The workdir cannot be used as asked (held by another run, config changed)."""


def _flat(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _same(a, b) -> bool:
  """Equal as JSON would store them (tuples and lists alike)."""
  return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


ABSENT = "(absent)"  # A field one of the two configs does not have.


def config_changes(saved: dict, new: dict) -> dict:
  """{dotted field: (old, new)} for every field whose value differs."""
  old_fields, new_fields = _flat(saved), _flat(new)
  return {k: (old_fields.get(k, ABSENT), new_fields.get(k, ABSENT))
          for k in sorted(set(old_fields) | set(new_fields))
          if not _same(old_fields.get(k, ABSENT), new_fields.get(k, ABSENT))}


def _shown(value) -> str:
  return value if value == ABSENT else json.dumps(value)


def check_config(workdir: str, saved: dict, new: dict, step: int,
                 allow_change: bool) -> dict:
  """The differences between the saved config and the new one of a run resumed
  at `step`, logged; raises WorkdirError for one outside `MAY_CHANGE` unless
  `allow_change`. Writes nothing. Returns {field: (old, new)}, every change."""
  changes = config_changes(saved, new)
  refused = {k: v for k, v in changes.items() if k not in MAY_CHANGE}
  if refused and not allow_change:
    lines = "\n".join(f"  config.{k}: {_shown(old)} -> {_shown(value)}"
                      for k, (old, value) in refused.items())
    raise WorkdirError(
        f"{os.path.abspath(workdir)} holds a run (at step {step}) trained with another "
        f"config:\n{lines}\nUse a new --workdir, or give --allow_config_change to go on "
        f"with the new values from step {step} (recorded in {HISTORY_FILE}).")
  for key, (old, value) in changes.items():
    log = logging.info if key in MAY_CHANGE else logging.warning
    log("config.%s changed from step %d: %s -> %s", key, step, _shown(old), _shown(value))
  return changes


def record_changes(workdir: str, step: int, changes: dict):
  """Append the changes a resumed run makes from `step` to config_history.jsonl."""
  record = {"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "changes": {k: list(v) for k, v in changes.items()}}
  with open(os.path.join(workdir, HISTORY_FILE), "a") as f:
    f.write(json.dumps(record) + "\n")


def saved_config(workdir: str) -> dict | None:
  """workdir/config.json in today's layout (`configlib.load_saved`), or None."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  return json.loads(configlib.load_saved(path).to_json_best_effort())


def config_hash(config: dict) -> str:
  """A short key of what a run trains: the config but for `MAY_CHANGE`."""
  kept = {k: v for k, v in _flat(config).items() if k not in MAY_CHANGE}
  return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class Lock:
  """workdir/lock held while this process trains there.

  A second process finds the file and is refused with the holder's pid and
  host; a lock left by a dead process on this host is taken over with a
  warning. Released (removed) on exit from the `with` block."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.held = False

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
    return True

  def __enter__(self):
    if not self._create():
      try:
        with open(self.path) as f:
          holder = json.load(f)
      except (OSError, ValueError):
        holder = {}
      pid, host = holder.get("pid"), holder.get("host")
      here = host == socket.gethostname()
      if here and isinstance(pid, int) and not _alive(pid):
        logging.warning("%s was left by process %d, which is gone; taking it over",
                        self.path, pid)
        os.remove(self.path)
        if not self._create():
          raise WorkdirError(f"{self.path}: another process took the lock at the same time")
      else:
        raise WorkdirError(
            f"{os.path.dirname(os.path.abspath(self.path))} is in use by process {pid} on "
            f"{host} (since {holder.get('since', '?')}); wait for it to end, or use another "
            f"--workdir. If that process is gone, remove {os.path.abspath(self.path)}.")
    self.held = True
    return self

  def __exit__(self, *exc):
    if self.held and os.path.exists(self.path):
      os.remove(self.path)
    self.held = False
