"""Compare runs: a metric of each, final or at its best checkpoint, mean ± std over seeds.

  python -m experiments.report runs/seeds/* --metric=test/mse [--at=best] [--output=curves.png]

Runs whose configs differ only in the seed (and in logging and checkpoint
intervals) are one row: n, their seeds, the mean ± sample std (ddof=1) of the
metric, the steps it was read at and the mean training time. A column per
config field that differs between the runs; rows sorted by those fields,
numerically where numeric (--sort_by=FIELD first, or --sort_by=metric: best
mean first). --at=best reads each run at the step where --select (default the
metric's valid/ counterpart) was best: the "best" entry of metrics.json where
it is for that metric, else the TensorBoard scalars. --per_run adds one row per
run. --output draws the learning curves (one colour per row, one panel per
--panel_by value; --spread: each row's mean over its seeds over their range;
--reference=CSV: another system's curve beside ours). The logic is in
irnn_jax/reports.py and irnn_jax/curves.py.
"""

import os
import sys

from absl import app, flags

from irnn_jax import curves, reports

FLAGS = flags.FLAGS
flags.DEFINE_string("metric", "test/loss", "Scalar to compare, e.g. test/mse, test/accuracy.")
flags.DEFINE_enum("at", "final", list(reports.AT),
                  "final: the value at the end; best: at the step where --select is best.")
flags.DEFINE_string("select", "", "Metric that picks the best step; empty: valid/NAME of --metric.")
flags.DEFINE_enum("mode", "auto", ["auto", "min", "max"],
                  "Whether lower or higher --select (and --metric, for sorting) is better; "
                  "auto: higher for accuracy, lower for anything else (loss, mse, bpc).")
flags.DEFINE_string("sort_by", "", "A differing config field to sort by first, or 'metric'; "
                    "empty: the differing fields in column order.")
flags.DEFINE_bool("per_run", False, "Also print one row per run.")
flags.DEFINE_string("output", "", "PNG path for the learning curves; empty: no plot.")
flags.DEFINE_string("panel_by", "", "Config field (e.g. data.seq_len) giving one panel per value.")
flags.DEFINE_float("baseline", None, "Draw a horizontal reference line at this value.")
flags.DEFINE_string("title", "", "Figure title.")
flags.DEFINE_bool("spread", False, "Plot each row's mean over its runs over their min-max band.")
flags.DEFINE_string("reference", "", "CSV file (header step,value) of another system's curve "
                    "to draw beside ours.")
flags.DEFINE_string("reference_label", "reference", "Legend label of --reference.")


def main(argv):
  workdirs = [p for p in argv[1:] if not os.path.isfile(p)]  # A sweep's dir/* has files too.
  if not workdirs:
    raise app.UsageError("give one or more run directories")
  try:
    runs = [reports.read_run(w) for w in workdirs]
    groups = reports.group_runs(runs, [FLAGS.metric], FLAGS.at, FLAGS.select, FLAGS.mode)
    groups = reports.sort_groups(groups, FLAGS.sort_by, FLAGS.metric, FLAGS.mode)
    if FLAGS.per_run:
      print(reports.run_table(groups, FLAGS.metric, FLAGS.at, FLAGS.select) + "\n")
    print(reports.table(groups, [FLAGS.metric], FLAGS.at, FLAGS.select))
    if FLAGS.output:
      reference = None
      if FLAGS.reference:
        reference = (*curves.read_reference(FLAGS.reference), FLAGS.reference_label)
      curves.plot(groups, FLAGS.output, FLAGS.metric, FLAGS.panel_by, FLAGS.baseline,
                  FLAGS.title, spread=FLAGS.spread, reference=reference)
      print(f"wrote {FLAGS.output}")
  except reports.ReportError as e:
    sys.exit(f"experiments.report: {e}")


if __name__ == "__main__":
  app.run(main)
