"""Learning curves of grouped runs in one PNG: one colour per group, one line per seed."""

from irnn_jax import reports, workdir as workdir_lib


def _panel_order(value):
  return (isinstance(value, str), value if value is not None else 0)


def plot(groups: list[reports.Group], output: str, metric: str, panel_by: str = "",
         baseline: float | None = None, title: str = ""):
  """Every run's `metric` curve, one panel per value of the config field
  `panel_by`; a dot marks the step each run is reported at."""
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
      for run, reported in zip(group.runs, group.results.get(metric, [None] * len(group.runs))):
        points = run.scalars.get(metric, [])
        if panel(run) != value or not points:
          continue
        ax.plot([p[0] for p in points], [p[2] for p in points], color=colour, linewidth=1,
                label=label)
        label = None  # One legend entry per group.
        if reported:
          ax.plot(*reported, "o", color=colour, markersize=3)
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
