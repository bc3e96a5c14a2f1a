"""Run a sweep: every point of a config's `get_sweep`, N processes at a time.

  python -m experiments.sweep --config=configs/adding.py:indrnn --sweep=figure2 \
      --workdir=runs/figure2 --parallel=2 [--config.train.num_steps=300 ...]

Sweeps. A config file declares `get_sweep(name)`: a list of override dicts from
dotted field names to values (built with irnn_jax/sweeps.py: product, zip_fields).
--sweep picks the name (default: the variant after ":"). The key "variant" picks
the config variant of a point (default: the one in --config). The key "seed"
is an axis like any field; --seeds=0,1,2 repeats every point once per seed
(irnn_jax.sweeps.over_seeds), each seed in its own workdir. Each point runs
as its own `python -m experiments.main` process in WORKDIR/<point name>, e.g.
WORKDIR/variant=lstm,seq_len=100, with its output in log.txt there.
--config.FIELD=VALUE flags apply to every point; a point's own value for the
same field wins. Every override must name an existing field: this is checked
before anything runs. A point is keyed by its resolved config: it is finished
once its metrics.json exists and its config.json is that config, and a rerun
skips it; an interrupted point resumes from its checkpoint; a point whose
budget or intervals changed resumes; one whose config changed otherwise (other
overrides) runs afresh, its earlier workdir kept as WORKDIR/<point>.<time>,
and the sweep says which fields changed. sweep.json holds each point's config
hash (irnn_jax.workdir.config_hash). A failed point
is reported with the tail of its log while the others go on, and the sweep
then exits with status 1. Ctrl-C or SIGTERM stops the running points (their
process groups) and exits with status 130; rerunning the command continues.
At the end WORKDIR/results.csv and results.md hold one row per point (its
overrides, status, wall seconds and final metrics) and the table is printed;
WORKDIR/sweep.json records the points. Where points differ in their seed,
results.md and the printed table add the final test metrics grouped over
seeds, mean ± sample std (irnn_jax.reports).
"""

import csv
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from irnn_jax import reports, sweeps, workdir as workdir_lib

FLAGS = flags.FLAGS
LOG = "log.txt"
WALL = "sweep_wall.json"  # Seconds the sweep has spent on a point, over all reruns.
TAIL_LINES = 25
POLL_SECONDS = 0.5
STOP_SECONDS = 10  # After SIGTERM, how long a child gets before SIGKILL.


class Stopped(Exception):
  """SIGTERM, raised in the main thread like KeyboardInterrupt is for SIGINT."""


@dataclasses.dataclass
class Point:
  name: str
  overrides: dict  # As the sweep declares it ("variant" included).
  variant: str | None
  fields: dict  # Every config override the point runs with, global ones included.
  workdir: str
  config: dict  # The resolved config the point trains with.
  status: str = "pending"  # pending | finished | failed | interrupted
  wall_s: float = 0.0

  @property
  def finished(self) -> bool:
    """metrics.json there, from a run of this very config (where it says)."""
    saved = workdir_lib.saved_config(self.workdir)
    return (os.path.exists(os.path.join(self.workdir, "metrics.json"))
            and (saved is None or not workdir_lib.config_changes(saved, self.config)))


def say(message: str):
  print(message, flush=True)


def load_module(path: str):
  spec = importlib.util.spec_from_file_location(f"sweep_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _args(variant):
  return [] if variant is None else [variant]


def plan(config_file: str, variant: str | None, sweep: str | None, workdir: str,
         global_overrides: dict, seeds=()) -> list[Point]:
  """The sweep's points (each once per seed of `seeds`, where given), each
  checked against its config (fields exist, types fit)."""
  module = load_module(config_file)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{config_file} has no get_sweep(name)")
  declared = module.get_sweep(*_args(sweep if sweep is not None else variant))
  if seeds:
    declared = sweeps.over_seeds(declared, seeds)
  points = []
  for overrides in declared:
    name = sweeps.point_name(overrides)
    point_variant = overrides.get(sweeps.VARIANT, variant)
    own = {k: v for k, v in overrides.items() if k != sweeps.VARIANT}
    fields = {**global_overrides, **own}
    config = module.get_config(*_args(point_variant))
    try:
      sweeps.apply_overrides(config, fields)
    except (ValueError, TypeError) as e:
      raise ValueError(f"sweep point {name}: {e}") from e
    shadowed = sorted(set(own) & set(global_overrides))
    if shadowed:
      say(f"note: point {name} sets {shadowed} itself; its values win over the flags")
    points.append(Point(name, dict(overrides), point_variant, fields,
                        os.path.join(workdir, name), json.loads(config.to_json_best_effort())))
  names = [p.name for p in points]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"sweep points share a directory name: {repeated}")
  if not points:
    raise ValueError(f"{config_file}: get_sweep returned no points")
  return points


def child_argv(config_file: str, point: Point) -> list[str]:
  """The experiments.main command line of one point."""
  spec = config_file if point.variant is None else f"{config_file}:{point.variant}"
  return [sys.executable, "-m", "experiments.main", f"--config={spec}",
          f"--workdir={point.workdir}",
          *(f"--config.{k}={sweeps.flag_value(v)}" for k, v in point.fields.items())]


def _read_json(path: str, default=None):
  if not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, value):
  with open(path, "w") as f:
    json.dump(value, f, indent=2, default=str)


def _log_tail(path: str, offset: int) -> str:
  with open(path, "rb") as f:
    f.seek(offset)
    lines = f.read().decode(errors="replace").splitlines()
  return "\n".join("    " + line for line in lines[-TAIL_LINES:])


class Running:
  """One child process: its point, start time and where its log starts."""

  def __init__(self, config_file, point, launch):
    os.makedirs(point.workdir, exist_ok=True)
    self.point, self.log = point, os.path.join(point.workdir, LOG)
    argv = launch(config_file, point)
    with open(self.log, "ab") as log:
      log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
      self.offset = log.tell()
      self.start = time.time()
      # A session of its own: the whole group can be stopped, and a terminal's
      # Ctrl-C reaches the sweep only.
      self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)

  def end(self, status: str) -> float:
    """Record the status and the wall time (added to earlier runs of the point)."""
    wall = time.time() - self.start
    path = os.path.join(self.point.workdir, WALL)
    self.point.wall_s = _read_json(path, {}).get("wall_s", 0.0) + wall
    _write_json(path, {"wall_s": self.point.wall_s})
    self.point.status = status
    return wall

  def stop(self):
    try:
      os.killpg(self.proc.pid, signal.SIGTERM)
      self.proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
      os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait()
    except ProcessLookupError:
      pass


def run_points(config_file: str, points: list[Point], parallel: int, launch) -> None:
  """Run the unfinished points; on KeyboardInterrupt or Stopped, stop them all and re-raise."""
  todo = [p for p in points if p.status == "pending"]
  done = len(points) - len(todo)
  running: list[Running] = []
  try:
    while todo or running:
      while todo and len(running) < parallel:
        run = Running(config_file, todo.pop(0), launch)
        running.append(run)
        say(f"start     {run.point.name} (point {points.index(run.point) + 1} of "
            f"{len(points)}, pid {run.proc.pid}, log {run.log})")
      time.sleep(POLL_SECONDS)
      for run in [r for r in running if r.proc.poll() is not None]:
        running.remove(run)
        done += 1
        code, name = run.proc.returncode, run.point.name
        if code == 0 and run.point.finished:
          wall = run.end("finished")
          say(f"finished  {name} in {wall:.1f} s  [{done}/{len(points)}]")
        else:
          wall = run.end("failed")
          why = f"exit status {code}" if code else "no metrics.json"
          say(f"FAILED    {name} after {wall:.1f} s ({why})  [{done}/{len(points)}]\n"
              f"{_log_tail(run.log, run.offset)}")
  except (KeyboardInterrupt, Stopped):
    for run in running:
      run.stop()
      run.end("interrupted")
      say(f"stopped   {run.point.name}")
    raise


def set_aside_if_changed(point: Point):
  """A point's workdir from a run of another config (other overrides): moved
  to <workdir>.<time>, kept, so that the point runs afresh; budgets and
  intervals that changed only resume it. Says what changed either way."""
  saved = workdir_lib.saved_config(point.workdir)
  if saved is None:
    return
  changes = workdir_lib.config_changes(saved, point.config)
  shown = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changes.items())
  if set(changes) - set(workdir_lib.MAY_CHANGE):
    kept = f"{point.workdir}.{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(point.workdir, kept)
    say(f"changed   {point.name}: {shown}; runs afresh, the earlier run is in {kept}")
  elif changes:
    say(f"resume    {point.name}: {shown}")


def results(points: list[Point]) -> list[dict]:
  """One row per point: name, override fields, status, wall seconds, final metrics."""
  keys = list(dict.fromkeys(k for p in points for k in p.overrides))
  rows = []
  for p in points:
    metrics = _read_json(os.path.join(p.workdir, "metrics.json"), {})
    rows.append({"name": p.name, **{k: p.overrides.get(k, "") for k in keys},
                 "status": p.status, "wall_s": round(p.wall_s, 1), **metrics})
  return rows


def _columns(rows):
  return list(dict.fromkeys(k for row in rows for k in row))


def _cell(value) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict]) -> str:
  columns = _columns(rows)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def seed_table(points: list[Point]) -> str:
  """The finished points grouped over seeds, final test metrics as mean ± std;
  "" where no two of them differ in seed only."""
  if not any(sweeps.SEED in p.fields for p in points):
    return ""
  try:
    runs = [reports.read_run(p.workdir) for p in points if p.status == "finished"]
    metrics = sorted(set.intersection(*({k for k in r.metrics if k.startswith("test/")}
                                        for r in runs))) if runs else []
    groups = reports.group_runs(runs, metrics) if metrics else []
  except reports.ReportError as e:
    return f"Over seeds: not shown ({e})"
  if all(len(g.runs) == 1 for g in groups):
    return ""
  return ("Over seeds (mean ± sample std):\n\n"
          + reports.table(reports.sort_groups(groups), metrics))


def write_results(workdir: str, points: list[Point]) -> str:
  rows = results(points)
  with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=_columns(rows), restval="")
    writer.writeheader()
    writer.writerows(rows)
  table = markdown(rows)
  over_seeds = seed_table(points)
  if over_seeds:
    table += "\n\n" + over_seeds
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(table + "\n")
  return table


def _raise_stopped(signum, frame):
  del frame
  raise Stopped(signal.Signals(signum).name)


def run_sweep(config: str, workdir: str, sweep: str | None = None, parallel: int = 1,
              overrides: dict | None = None, launch=child_argv, seeds=()) -> int:
  """Run the sweep `sweep` of config "FILE[:VARIANT]" in `workdir`; the exit status.

  `overrides` (dotted field -> value) apply to every point; `seeds` repeats
  every point once per seed; `launch(config_file, point)` gives a point's
  command line.
  """
  config_file, _, variant = config.partition(":")
  variant = variant or None
  points = plan(config_file, variant, sweep, workdir, overrides or {}, seeds)
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, "sweep.json"), {
      "config": config, "sweep": sweep if sweep is not None else variant,
      "overrides": overrides or {}, "seeds": list(seeds),
      "points": [{"name": p.name, "overrides": p.overrides,
                  "config_hash": workdir_lib.config_hash(p.config)} for p in points]})
  for p in points:
    set_aside_if_changed(p)
    if p.finished:
      p.status = "finished"
      p.wall_s = _read_json(os.path.join(p.workdir, WALL), {}).get("wall_s", 0.0)
  todo = sum(p.status == "pending" for p in points)
  say(f"sweep: {len(points)} points in {workdir}: {len(points) - todo} already finished, "
      f"{todo} to run, {parallel} at a time")

  previous = signal.signal(signal.SIGTERM, _raise_stopped)
  try:
    run_points(config_file, points, parallel, launch)
  except (KeyboardInterrupt, Stopped):
    write_results(workdir, points)
    finished = [p.name for p in points if p.status == "finished"]
    say(f"interrupted: {len(finished)} of {len(points)} points finished {finished}; "
        "rerun the same command to continue")
    return 130
  finally:
    signal.signal(signal.SIGTERM, previous)

  say(write_results(workdir, points))
  failed = [p.name for p in points if p.status != "finished"]
  say(f"{len(points) - len(failed)} of {len(points)} points finished"
      + (f"; failed: {failed}" if failed else ""))
  return 1 if failed else 0


def define_flags():
  """Only when run as a script, so tests can import this next to other experiments."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant]; "
                                  "--config.FIELD=VALUE applies to every point.")
  flags.DEFINE_string("workdir", None, "Sweep directory: one sub-directory per point.")
  flags.DEFINE_string("sweep", None, "Name passed to get_sweep; default: the config variant.")
  flags.DEFINE_integer("parallel", 1, "How many points run at a time.", lower_bound=1)
  flags.DEFINE_list("seeds", [], "Run every point once per seed, e.g. 0,1,2 (config.seed); "
                    "empty: the sweep's own seeds.")
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError as e:
    raise app.UsageError(f"--seeds takes integers, e.g. 0,1,2: {e}") from e
  sys.exit(run_sweep(config_flags.get_config_filename(FLAGS["config"]), FLAGS.workdir,
                     FLAGS.sweep, FLAGS.parallel,
                     config_flags.get_override_values(FLAGS["config"]), seeds=seeds))


if __name__ == "__main__":
  define_flags()
  app.run(main)
