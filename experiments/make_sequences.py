"""Write a small example of one's own sequences in both formats the trainer reads.

  python -m experiments.make_sequences --out=runs/seqdata

writes runs/seqdata/sequences.npz and runs/seqdata/Example_{TRAIN,TEST}.ts:
the same variable-length, 3-channel sequences, classed by the order of their
bumps across channels (irnn_jax/data/bumps.py).
"""

from absl import app, flags

from irnn_jax.data import bumps

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Directory to write the files to (made if missing).")
flags.DEFINE_integer("num_train", 600, "Training sequences.")
flags.DEFINE_integer("num_test", 300, "Test sequences.")
flags.DEFINE_integer("seed", 0, "Draws the sequences.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for path in bumps.write_example(FLAGS.out, FLAGS.num_train, FLAGS.num_test, FLAGS.seed):
    print(path)


if __name__ == "__main__":
  flags.mark_flags_as_required(["out"])  # Not on import (tests import it).
  app.run(main)
