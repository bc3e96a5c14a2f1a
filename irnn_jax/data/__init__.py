"""Data sets. Each builder takes `config.data` and returns an object with:

  task, input_dim, num_outputs, readout, vocab_size, seq_len  (what the model needs)
  train_batch(step) -> dict of numpy arrays: the same batch for the same step,
      so a resumed run sees the same data order;
  eval_splits: names of the evaluation splits;
  eval_batches(split) -> iterator of dicts, padded batches carrying "mask".

Optional: `carries_state = True` with `is_epoch_start(step)` (language models):
the trainer feeds the final recurrent states of one batch as the initial
states of the next, from zero at every epoch start and every evaluation split.
Optional: `save(workdir)` writes what a resume or a later tool needs (a
permutation, a vocabulary). Builders only read the workdir (to check what an
earlier run saved there); the trainer calls `save` once the config and the
data have been checked.
"""

from irnn_jax.data import adding, hdf5_images, mnist, ptb, sequences, tfds_images

BUILDERS = {
    "adding": adding.build,
    "arrays": sequences.build_arrays,  # Your own sequences in a .npz file.
    "hdf5": hdf5_images.build,  # Images in neon's HDF5 layout.
    "mnist": mnist.build,
    "ptb": ptb.build,
    "tfds_image": tfds_images.build,
    "ts": sequences.build_ts,  # Your own sequences in UCR/UEA .ts files.
}
# Drawn from the seed: no whole split to read, config.data.eval_examples must be > 0.
GENERATED = ("adding",)


def build_dataset(data_cfg, seed: int, workdir: str):
  """`workdir` is where a data set keeps what must survive a resume (e.g. a permutation)."""
  if data_cfg.name not in BUILDERS:
    raise ValueError(f"config.data.name: unknown data set {data_cfg.name!r}; "
                     f"choose from {sorted(BUILDERS)}")
  return BUILDERS[data_cfg.name](data_cfg, seed, workdir)
