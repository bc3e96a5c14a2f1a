"""Evaluate a saved run on one split, at its latest or best checkpoint.

  python -m experiments.evaluate --workdir=runs/adding --split=test --checkpoint=best

Prints the metrics (those of training: loss and mse, accuracy, or bpc and
perplexity) and writes them to DIR/evaluation_<checkpoint>_<split>.json
(--output to write elsewhere). Works for every task and on a run that is still
training; the data set and model are rebuilt from DIR/config.json.
"""

import sys

from absl import app, flags

from experiments import saved_run_flags
from irnn_jax import evaluation, train

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "", "JSON file to write; default "
                    "DIR/evaluation_<checkpoint>_<split>.json.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  train.quiet_library_logs()
  try:
    result = evaluation.evaluate_run(FLAGS.workdir, FLAGS.split, FLAGS.checkpoint,
                                     FLAGS.max_examples, FLAGS.data_dir)
  except saved_run_flags.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  path = evaluation.write_evaluation(result, FLAGS.output)
  shown = ", ".join(f"{k}={v:.6g}" for k, v in result["metrics"].items())
  print(f"{FLAGS.workdir}: {FLAGS.split} at the {FLAGS.checkpoint} checkpoint (step "
        f"{result['step']}), {result['examples']} examples: {shown}")
  print(f"wrote {path}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])  # Not on import (tests import it).
  app.run(main)
