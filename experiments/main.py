"""Train one experiment.

  python -m experiments.main --config=configs/adding.py:indrnn --workdir=runs/adding \
      --config.data.seq_len=1000

Several processes (hosts): start the same command in each with --multihost
(Cloud TPU, SLURM, Open MPI: JAX finds its peers), or with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I.
"""

import os
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from irnn_jax import host_memory, parallel, train
from irnn_jax.checkpoints import CheckpointError
from irnn_jax.workdir import WorkdirError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and metrics; "
                    "rerunning with the same one resumes.")
flags.DEFINE_bool("multihost", False, "Join a multi-process run (jax.distributed).")
flags.DEFINE_string("coordinator_address", "", "HOST:PORT of process 0; implies --multihost.")
flags.DEFINE_integer("num_processes", 0, "Processes in the run; implies --multihost.")
flags.DEFINE_integer("process_id", -1, "This process's index; implies --multihost.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many JAX devices, so that "
                     "the batch is split over them and each runs on its own core: one per "
                     "core is fastest on CPU (the batch sizes must divide by it). No effect "
                     "on the devices of a GPU or TPU.")
flags.DEFINE_bool("keep_freed_memory", True, "Set glibc malloc to reuse freed memory "
                  "(irnn_jax/host_memory.py): CPU steps then skip tens of thousands of "
                  "page faults; the process keeps its peak heap.")
flags.DEFINE_bool("allow_config_change", False, "Resume a workdir whose config.json differs "
                  "from this config in more than budgets and intervals; the change and the "
                  "step it applies from go to config_history.jsonl.")
flags.DEFINE_bool("verbose", False, "Show the traceback of an error (also with "
                  "IRNN_JAX_VERBOSE=1).")

# Errors in what a person gave (config, data, workdir, checkpoints, a diverged
# run): one message, no traceback, unless --verbose.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, WorkdirError,
               CheckpointError)


def _verbose(argv=()) -> bool:
  return "--verbose" in argv or bool(os.environ.get("IRNN_JAX_VERBOSE"))


def _fail(message: str, verbose: bool):
  """Print one error message (after the traceback with --verbose) and exit 1."""
  if verbose:
    traceback.print_exc()
  print(f"error: {message}" + ("" if verbose else "\n(--verbose shows the traceback)"),
        file=sys.stderr)
  sys.exit(1)


def _innermost(error: BaseException) -> BaseException:
  """The error behind absl's and ml_collections' wrappers (a KeyError's text unescaped)."""
  while True:
    inner = error.__cause__ or (error.args[0] if error.args and
                                isinstance(error.args[0], BaseException) else None)
    if inner is None:
      return error
    error = inner


def _message(error: BaseException, argv) -> str:
  """One readable message for an error of the config file or an override."""
  inner = _innermost(error)
  text = (inner.args[0] if isinstance(inner, KeyError) and inner.args else str(inner)).strip()
  if "Traceback (most recent call last)" in text:  # Wrapped with its traceback: the last line.
    text = text.splitlines()[-1]
  if text.startswith("Failed loading config file"):
    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "?")
    text = (f"cannot load the config file {path!r} (relative to {os.getcwd()}): "
            + text.splitlines()[-1].strip())
  if isinstance(inner, (KeyError, AttributeError)):  # An unknown field: name the flag.
    field = text.splitlines()[0].strip("'\"")
    flag = next((a for a in argv if a.startswith("--config.") and f".{field}=" in a), None)
    text = f"{flag or 'a --config override'} names no config field: " + " ".join(
        text.splitlines()[1:]).strip()
  return text


def parse_flags(argv):
  """absl's flag parsing, with errors in the config file or its overrides
  (unknown field, bad variant or value) as one message."""
  try:
    args = FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    _fail(_message(e, argv), _verbose(argv))
  error = getattr(FLAGS["config"].value, "_error", None)  # A config file that failed to load.
  if error is not None:
    _fail(_message(error, argv), _verbose(argv))
  return args


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.keep_freed_memory:  # Before JAX starts its threads.
    logging.info("glibc malloc keeps freed memory: %s", host_memory.keep_freed_memory())
  parallel.set_cpu_devices(FLAGS.cpu_devices)  # Before JAX starts its CPU backend.
  if (FLAGS.multihost or FLAGS.coordinator_address or FLAGS.num_processes
      or FLAGS.process_id >= 0):
    parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info("Config:\n%s", FLAGS.config)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir, FLAGS.allow_config_change)
  except train.Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)
  except USER_ERRORS as e:
    _fail(str(e), FLAGS.verbose or _verbose())


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])  # Not on import (tests import it).
  app.run(main, flags_parser=parse_flags)
