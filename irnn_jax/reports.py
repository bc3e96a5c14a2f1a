"""Comparing runs: a metric of each run, final or at its best checkpoint, over seeds.

Runs whose resolved configs differ only in `SEED_FIELDS` and `NO_EFFECT` form
one group, reported as mean ± sample standard deviation (ddof=1) over its runs.
The table has a column per config field that differs between the runs given.
"""

import dataclasses
import json
import math
import os
import re

import numpy as np

from irnn_jax import best_checkpoint, sweeps, workdir as workdir_lib
from irnn_jax.summary import read_scalars

SEED_FIELDS = ("seed",)  # What a group averages over.
# Fields that do not change what a run computes: its logging and checkpoints.
NO_EFFECT = ("train.log_every", "train.checkpoint_every", "train.keep_checkpoints")
BEST = "best"  # The key of the best-checkpoint entry in metrics.json.
AT = ("final", "best")
MAX_LABEL = 60  # Characters of a group's name in a legend.


class ReportError(ValueError):
  """The runs cannot be compared as asked (not a run, a metric missing)."""


@dataclasses.dataclass
class RunRecord:
  workdir: str
  config: dict  # The resolved config, as config.json holds it in today's layout.
  metrics: dict  # metrics.json; {} while the run trains.
  _scalars: dict | None = None

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.workdir))

  @property
  def scalars(self) -> dict:
    if self._scalars is None:
      self._scalars = read_scalars(self.workdir)
    return self._scalars

  @property
  def seed(self):
    return field_value(self.config, SEED_FIELDS[0])


def read_run(workdir: str) -> RunRecord:
  """The run in `workdir`; ReportError if it has no config.json."""
  if not os.path.isdir(workdir):
    raise ReportError(f"{workdir} is not a directory")
  config = workdir_lib.saved_config(workdir)
  if config is None:
    raise ReportError(f"{workdir} is not a run directory (no {workdir_lib.CONFIG_FILE})")
  path = os.path.join(workdir, "metrics.json")
  metrics = {}
  if os.path.exists(path):
    with open(path) as f:
      metrics = json.load(f)
  return RunRecord(workdir, config, metrics)


def field_value(config: dict, dotted: str):
  value = config
  for key in dotted.split("."):
    if not isinstance(value, dict) or key not in value:
      return workdir_lib.ABSENT
    value = value[key]
  return value


def valid_of(metric: str) -> str:
  """The validation metric that picks the best checkpoint: test/mse -> valid/mse."""
  return "valid/" + metric.split("/", 1)[-1]


def _tags(run: RunRecord) -> set:
  return {k for k in [*run.scalars, *run.metrics] if "/" in k}  # Metrics are split/name.


def final_value(run: RunRecord, metric: str) -> tuple[int, float] | None:
  """(step, value) at the end: metrics.json, or the latest scalar if it is newer."""
  points = run.scalars.get(metric)
  if metric in run.metrics and (not points or run.metrics.get("step", 0) >= points[-1][0]):
    return run.metrics.get("step", points[-1][0] if points else 0), float(run.metrics[metric])
  return (points[-1][0], points[-1][2]) if points else None


def best_value(run: RunRecord, metric: str, select: str, mode: str) -> tuple[int, float] | None:
  """(step, `metric`) at the step where `select` is best: the "best" entry of
  metrics.json where it is for `select` and `mode`, else the scalars (earliest
  step of a tie)."""
  best = run.metrics.get(BEST) or {}
  if (best.get("metric") == select and best.get("mode") == mode
      and metric in best.get("metrics", {})):
    return int(best["step"]), float(best["metrics"][metric])
  points = [p for p in run.scalars.get(select, []) if math.isfinite(p[2])]
  values = {s: v for s, _, v in run.scalars.get(metric, [])}
  if not points or not values:
    return None
  sign = 1 if mode == "min" else -1
  step = min(points, key=lambda p: (sign * p[2], p[0]))[0]
  if step not in values:
    raise ReportError(f"{run.workdir}: {metric} has no value at step {step}, where {select} "
                      "is best")
  return step, values[step]


def wall_seconds(run: RunRecord, metric: str) -> float:
  """Training time over all resumes (metrics.json), else the span of the metric's curve."""
  if "train_seconds" in run.metrics:
    return float(run.metrics["train_seconds"])
  points = run.scalars.get(metric) or [(0, 0.0, 0.0)]
  return points[-1][1] - points[0][1]


def values(runs: list[RunRecord], metric: str, at: str = "final", select: str = "",
           mode: str = "auto") -> list[tuple[int, float]]:
  """(step, value) of `metric` for each run; ReportError naming the runs without it."""
  if at not in AT:
    raise ReportError(f"at={at!r}: choose from {AT}")
  select = select or valid_of(metric)
  found = [final_value(r, metric) if at == "final" else
           best_value(r, metric, select, best_checkpoint.resolve_mode(select, mode))
           for r in runs]
  missing = [r for r, f in zip(runs, found) if f is None]
  if missing:
    needed = metric if at == "final" else f"{metric} and {select}"
    have = sorted(set.union(*map(_tags, missing)))
    whose = "no run has" if len(missing) == len(runs) else (
        f"{', '.join(r.name for r in missing)} {'lacks' if len(missing) == 1 else 'lack'}")
    raise ReportError(f"{whose} {needed}; they have: {', '.join(have) or 'nothing'}")
  return found


def mean_std(xs) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1; nan for one value)."""
  xs = np.asarray(xs, np.float64)
  return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else math.nan


def differing_fields(runs: list[RunRecord]) -> list[str]:
  """Dotted config fields whose value is not the same in every run, but for
  `SEED_FIELDS` and `NO_EFFECT`; sorted."""
  changed = set()
  for run in runs[1:]:
    changed |= set(workdir_lib.config_changes(runs[0].config, run.config))
  return sorted(changed - set(SEED_FIELDS) - set(NO_EFFECT))


@dataclasses.dataclass
class Group:
  """Runs with one config but for the seed, and each metric's (step, value) per run."""
  fields: dict  # Differing field -> this group's value.
  runs: list
  results: dict = dataclasses.field(default_factory=dict)  # metric -> [(step, value)]

  def stats(self, metric: str) -> tuple[float, float]:
    return mean_std([v for _, v in self.results[metric]])

  @property
  def label(self) -> str:
    """The sweep point's name without its seed where the runs share one, else
    the differing fields; at most `MAX_LABEL` characters."""
    names = {re.sub(rf",?\b{sweeps.SEED}=-?\d+", "", r.name).strip(",") for r in self.runs}
    keys = sweeps.short_keys(list(self.fields))
    label = (names.pop() if len(names) == 1 and "" not in names else
             ",".join(f"{k}={_shown(v)}" for k, v in zip(keys, self.fields.values())) or "runs")
    return label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 3] + "..."


def group_runs(runs: list[RunRecord], metrics: list[str], at: str = "final", select: str = "",
               mode: str = "auto") -> list[Group]:
  """One group per config but for the seed, in the order of their first run."""
  fields = differing_fields(runs)
  groups: dict[str, Group] = {}
  for run in runs:
    key = json.dumps([field_value(run.config, f) for f in fields], default=str)
    groups.setdefault(key, Group({f: field_value(run.config, f) for f in fields}, []))
    groups[key].runs.append(run)
  for group in groups.values():
    for metric in metrics:
      group.results[metric] = values(group.runs, metric, at, select, mode)
  return list(groups.values())


def _order(value):
  """Numbers before text, numbers by value: 2 before 10."""
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return (0, value, "")
  return (1, 0, _shown(value))


def sort_groups(groups: list[Group], by: str = "", metric: str = "", mode: str = "auto"):
  """Sorted by the differing fields in column order (`by` first if it is one of
  them), numerically where numeric; by="metric": best mean of `metric` first."""
  if by == "metric":
    sign = 1 if best_checkpoint.resolve_mode(metric, mode) == "min" else -1
    return sorted(groups, key=lambda g: sign * g.stats(metric)[0])
  fields = list(groups[0].fields) if groups else []
  if by:
    if by not in fields:
      raise ReportError(f"sort_by={by!r} is not a field that differs between the runs; "
                        f"those are: {fields or 'none'}")
    fields.remove(by)
    fields.insert(0, by)
  return sorted(groups, key=lambda g: [_order(g.fields[f]) for f in fields])


def _shown(value) -> str:
  return value if isinstance(value, str) else json.dumps(value)


def _stat(mean: float, std: float) -> str:
  return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def _steps(steps: list[int]) -> str:
  low, high = min(steps), max(steps)
  return str(low) if low == high else f"{low}-{high}"


def _duration(seconds: float) -> str:
  return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _seeds(runs) -> str:
  return ", ".join(_shown(r.seed) for r in runs)


def column(metric: str, at: str = "final", select: str = "") -> str:
  return metric if at == "final" else f"{metric} at best {select or valid_of(metric)}"


def table(groups: list[Group], metrics: list[str], at: str = "final", select: str = "") -> str:
  """Markdown: the differing fields, n, seeds, mean ± std of each metric, steps, wall time."""
  fields = list(groups[0].fields) if groups else []
  header = [*sweeps.short_keys(fields), "n", "seeds",
            *(column(m, at, select) for m in metrics), "step", "wall time"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for g in groups:
    wall = np.mean([wall_seconds(r, metrics[0]) for r in g.runs])
    cells = [*(_shown(g.fields[f]) for f in fields), str(len(g.runs)), _seeds(g.runs),
             *(_stat(*g.stats(m)) for m in metrics),
             _steps([s for s, _ in g.results[metrics[0]]]), _duration(wall)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def run_table(groups: list[Group], metric: str, at: str = "final", select: str = "") -> str:
  """Markdown, one row per run: name, the differing fields, seed, value, step, wall time."""
  fields = list(groups[0].fields) if groups else []
  header = ["run", *sweeps.short_keys(fields), "seed", column(metric, at, select), "step",
            "wall time"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for g in groups:
    for run, (step, value) in zip(g.runs, g.results[metric]):
      cells = [run.name, *(_shown(g.fields[f]) for f in fields), _shown(run.seed),
               f"{value:.4g}", str(step), _duration(wall_seconds(run, metric))]
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
