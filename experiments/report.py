"""Compare runs from their TensorBoard event files (no TensorFlow needed).

  python -m experiments.report runs/adding_* --metric=test/mse --output=curves.png

Prints final and best value, their steps and the wall time of each run, and
draws the learning curves into one PNG (one panel per `--panel_by` value).
"""

import json
import os

from absl import app, flags

from irnn_jax.summary import read_scalars

FLAGS = flags.FLAGS
flags.DEFINE_string("metric", "test/loss", "Scalar tag to compare.")
flags.DEFINE_string("output", "", "PNG path for the learning curves; empty: no plot.")
flags.DEFINE_enum("mode", "auto", ["auto", "min", "max"],
                  "Whether lower or higher is better; auto: higher for accuracy, "
                  "lower for anything else (loss, mse, bpc, perplexity).")
flags.DEFINE_string("panel_by", "", "Config field (e.g. data.seq_len) giving one panel per value.")
flags.DEFINE_float("baseline", None, "Draw a horizontal reference line at this value.")
flags.DEFINE_string("title", "", "Figure title.")


def config_field(workdir: str, dotted: str):
  with open(os.path.join(workdir, "config.json")) as f:
    value = json.load(f)
  for key in dotted.split("."):
    value = value[key]
  return value


def summarize(workdir: str, metric: str, mode: str) -> dict:
  points = read_scalars(workdir).get(metric)
  if not points:
    raise ValueError(f"{workdir} has no scalar {metric!r}")
  if mode == "auto":
    mode = "max" if "accuracy" in metric else "min"
  pick = min if mode == "min" else max
  best = pick(points, key=lambda p: p[2])
  wall_s = points[-1][1] - points[0][1]
  metrics_path = os.path.join(workdir, "metrics.json")
  if os.path.exists(metrics_path):  # Training time over all resumes.
    with open(metrics_path) as f:
      wall_s = json.load(f).get("train_seconds", wall_s)
  return {"run": os.path.basename(os.path.normpath(workdir)), "final": points[-1][2],
          "final_step": points[-1][0], "best": best[2], "best_step": best[0],
          "wall_s": wall_s, "points": points}


def plot(rows, groups, output, metric, baseline=None, title=""):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = sorted(set(groups), key=lambda g: (isinstance(g, str), g if g is not None else 0))
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, panel in zip(axes[0], panels):
    for row, group in zip(rows, groups):
      if group == panel:
        ax.plot([p[0] for p in row["points"]], [p[2] for p in row["points"]], label=row["run"])
    if baseline is not None:
      ax.axhline(baseline, color="gray", linestyle="--", linewidth=1, label="baseline")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(str(panel) if panel is not None else "")
    ax.legend(fontsize=7)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(output, dpi=110)


def main(argv):
  workdirs = [p for p in argv[1:] if os.path.isdir(p)]  # A sweep's dir/* holds files too.
  if not workdirs:
    raise app.UsageError("give one or more run directories")
  rows = [summarize(w, FLAGS.metric, FLAGS.mode) for w in workdirs]
  print(f"| run | final {FLAGS.metric} | step | best | best step | wall time |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['run']} | {r['final']:.4g} | {r['final_step']} | {r['best']:.4g} | "
          f"{r['best_step']} | {r['wall_s'] / 60:.1f} min |")
  if FLAGS.output:
    groups = [config_field(w, FLAGS.panel_by) if FLAGS.panel_by else None for w in workdirs]
    plot(rows, groups, FLAGS.output, FLAGS.metric, FLAGS.baseline, FLAGS.title)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
