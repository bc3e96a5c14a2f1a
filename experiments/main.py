"""Train one experiment.

  python -m experiments.main --config=configs/adding.py:indrnn --workdir=runs/adding \
      --config.data.seq_len=1000

Several processes (hosts): start the same command in each with --multihost
(Cloud TPU, SLURM, Open MPI: JAX finds its peers), or with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from irnn_jax import host_memory, parallel, train

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
flags.mark_flags_as_required(["config", "workdir"])


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
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
