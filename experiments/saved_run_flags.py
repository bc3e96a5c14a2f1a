"""The flags of the commands that read a saved run (evaluate, predict)."""

from absl import flags

from irnn_jax.checkpoints import CheckpointError

flags.DEFINE_string("workdir", None, "Workdir of a finished or running run.")
flags.DEFINE_string("split", "test", "Evaluation split of the run's data set: test, or valid "
                    "where it has one.")
flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"], "latest: the newest of "
                  "checkpoints/; best: the one of checkpoints_best/ (config.train.select_metric).")
flags.DEFINE_integer("max_examples", 0, "Only the first N examples of the split; 0 = all "
                     "(the run's config.data.eval_examples for the generated adding problem).")
flags.DEFINE_string("data_dir", "", "Replaces config.data.dir of the run (e.g. when the "
                    "run's path was relative to another directory).")

# Errors of the user's making: printed in one line, exit status 1.
USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError)
