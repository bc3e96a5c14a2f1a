"""Write a run's predictions on one split to CSV, for every task.

  python -m experiments.predict --workdir=runs/renet_mnist --split=test \
      --output=runs/renet_mnist/test_predictions.csv [--checkpoint=best] \
      [--format=inference_target]

One row per example of the split (irnn_jax/predictions.py has the columns):
classifiers write the label, the predicted class (with their names where the
data set has class names) and the class probabilities; regression the target
and the prediction (K columns each for K targets); language models one row per
token: the next token, the argmax and its probability. --format=inference_target
writes neon's file instead: the header `inference, target`, then the predicted
class (or prediction) and the label (or target) of each example. The data set and model
are rebuilt from workdir/config.json. Prints the accuracy or the mse
recomputed from the file, next to the run's metrics.json value.
"""

import json
import os
import sys

from absl import app, flags

from experiments import saved_run_flags
from irnn_jax import predictions, train

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "File to write.")
flags.DEFINE_enum("format", "table", list(predictions.FORMATS), "table: the CSV of "
                  "irnn_jax/predictions.py; inference_target: neon's two-column file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  train.quiet_library_logs()
  try:
    result = predictions.write_predictions(FLAGS.workdir, FLAGS.split, FLAGS.output,
                                           FLAGS.max_examples, FLAGS.data_dir,
                                           FLAGS.checkpoint, FLAGS.format)
  except saved_run_flags.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  name = "mse" if "mse" in result else "accuracy"
  value = (predictions.file_mse if name == "mse" else predictions.file_accuracy)(FLAGS.output)
  print(f"{FLAGS.output}: {result['examples']} {FLAGS.split} rows at step "
        f"{result['step']} ({FLAGS.checkpoint} checkpoint), {name} {value:.4f} "
        "(recomputed from the file)")
  metrics_path = os.path.join(FLAGS.workdir, "metrics.json")
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      saved = json.load(f)
    if FLAGS.checkpoint == "best":
      saved = (saved.get("best") or {}).get("metrics", {})
    logged = saved.get(f"{FLAGS.split}/{name}")
    if logged is not None:
      print(f"metrics.json {FLAGS.split}/{name}: {logged:.4f} (on config.data."
            f"eval_examples examples, at the run's {FLAGS.checkpoint} evaluation)")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "output"])  # Not on import (tests import it).
  app.run(main)
