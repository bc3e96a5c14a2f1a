"""Write a classification run's predictions (latest checkpoint) to CSV.

  python -m experiments.predict --workdir=runs/renet_mnist --split=test \
      --output=runs/renet_mnist/test_predictions.csv

One row per example of the split: example, label, predicted, p_0 .. p_{K-1}.
Works for every classification run (ReNet, the MNIST sequence models): the
data set and model are rebuilt from workdir/config.json. Prints the accuracy
recomputed from the file, next to the run's metrics.json value.
"""

import json
import os

from absl import app, flags

from irnn_jax import predictions, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Workdir of a finished or running classification run.")
flags.DEFINE_string("split", "test", "Evaluation split: test, or valid where the run has one.")
flags.DEFINE_string("output", None, "CSV file to write.")
flags.DEFINE_integer("max_examples", 0, "Only the first N examples of the split; 0 = all.")
flags.DEFINE_string("data_dir", "", "Replaces config.data.dir of the run (e.g. when the "
                    "run's path was relative to another directory).")
flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  train.quiet_library_logs()
  result = predictions.write_predictions(FLAGS.workdir, FLAGS.split, FLAGS.output,
                                         FLAGS.max_examples, FLAGS.data_dir)
  accuracy = predictions.file_accuracy(FLAGS.output)
  print(f"{FLAGS.output}: {result['examples']} {FLAGS.split} examples at step "
        f"{result['step']}, accuracy {accuracy:.4f} (recomputed from the file)")
  metrics_path = os.path.join(FLAGS.workdir, "metrics.json")
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      logged = json.load(f).get(f"{FLAGS.split}/accuracy")
    if logged is not None:
      print(f"metrics.json {FLAGS.split}/accuracy: {logged:.4f} (on config.data."
            "eval_examples examples, at the run's last evaluation)")


if __name__ == "__main__":
  app.run(main)
