"""Learning curves of grouped runs in one PNG: one colour per group, one line per seed
(or, with `spread`, the mean over seeds and their range), and optionally a reference curve."""

import csv

import numpy as np

from irnn_jax import reports, workdir as workdir_lib


def read_reference(path: str) -> tuple[list[float], list[float]]:
  """(steps, values) from a CSV file with the header `step,value`."""
  try:
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
    points = [(float(r["step"]), float(r["value"])) for r in rows]
  except (OSError, KeyError, TypeError, ValueError) as e:
    raise reports.ReportError(f"reference curve {path}: expected a CSV file with the header "
                              f"'step,value' and numbers below it ({e})") from e
  if not points:
    raise reports.ReportError(f"reference curve {path}: no rows")
  return [p[0] for p in points], [p[1] for p in points]


def mean_and_range(curves: list[list]) -> tuple[np.ndarray, ...]:
  """(steps, mean, min, max) over the runs' curves at the steps they all have."""
  by_step = [{p[0]: p[2] for p in c} for c in curves]
  steps = sorted(set.intersection(*(set(d) for d in by_step)))
  values = np.array([[d[s] for s in steps] for d in by_step])
  return np.array(steps), values.mean(0), values.min(0), values.max(0)


def _panel_order(value):
  return (isinstance(value, str), value if value is not None else 0)


def plot(groups: list[reports.Group], output: str, metric: str, panel_by: str = "",
         baseline: float | None = None, title: str = "", spread: bool = False,
         reference: tuple[list, list, str] | None = None):
  """Every run's `metric` curve, one panel per value of the config field
  `panel_by`; a dot marks the step each run is reported at. `spread`: one
  line per group, the mean over its runs, over a band from their min to max.
  `reference` (steps, values, label): another system's curve, drawn in black."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  def panel(run):
    value = reports.field_value(run.config, panel_by) if panel_by else None
    if value == workdir_lib.ABSENT:
      raise reports.ReportError(f"panel_by={panel_by!r}: {run.workdir} has no such config field")
    return value

  panels = sorted({panel(r) for g in groups for r in g.runs}, key=_panel_order)
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for ax, value in zip(axes[0], panels):
    for i, group in enumerate(groups):
      colour, label = colours[i % len(colours)], f"{group.label} (n={len(group.runs)})"
      if spread:
        runs = [r.scalars.get(metric, []) for r in group.runs if panel(r) == value]
        runs = [c for c in runs if c]
        if runs:
          steps, mean, low, high = mean_and_range(runs)
          ax.fill_between(steps, low, high, color=colour, alpha=0.25, linewidth=0)
          ax.plot(steps, mean, color=colour, linewidth=1.2, label=label + ", mean and range")
        continue
      for run, reported in zip(group.runs, group.results.get(metric, [None] * len(group.runs))):
        points = run.scalars.get(metric, [])
        if panel(run) != value or not points:
          continue
        ax.plot([p[0] for p in points], [p[2] for p in points], color=colour, linewidth=1,
                label=label)
        label = None  # One legend entry per group.
        if reported:
          ax.plot(*reported, "o", color=colour, markersize=3)
    if reference is not None:
      ax.plot(reference[0], reference[1], color="black", linewidth=1, linestyle="-",
              marker=".", markersize=3, label=reference[2])
    if baseline is not None:
      ax.axhline(baseline, color="gray", linestyle="--", linewidth=1, label="baseline")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{panel_by}={value}" if panel_by else "")
    ax.legend(fontsize=7)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(output, dpi=110)
  plt.close(fig)
