"""A small synthetic sequence set: the order of bumps across channels (numpy only).

Each sequence has 3 channels of noise, 30 to 60 steps, and one bump per
channel at a random step. The class is the order in which the channels peak,
named by channel letters ("bca": b first, then c, then a): 6 classes. Every
channel holds one bump of the same shape in every class, so statistics over
time (means, maxima) and the length tell nothing; predicting the commonest
class scores about 1/6. Channels have their own offsets and scales, so
standardisation matters.

`write_example(out)` writes it as out/sequences.npz and the .ts pair
out/Example_TRAIN.ts, out/Example_TEST.ts, with the same sequences.
"""

import itertools
import os

import numpy as np

from irnn_jax.data.sequence_files import Sequences, write_ts

CHANNELS = "abc"
CLASSES = tuple("".join(p) for p in itertools.permutations(CHANNELS))
MIN_LEN, MAX_LEN = 30, 60
WIDTH = 1.5  # Bump std in steps.
MIN_GAP = 4  # Steps between two channels' peaks.
NOISE = 0.2
OFFSETS, SCALES = np.array([0.0, 5.0, -2.0]), np.array([1.0, 10.0, 0.1])


def make_bumps(num: int, seed: int) -> Sequences:
  """`num` sequences: x[N, MAX_LEN, 3] (zero past each length), string labels."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=num)
  x = np.zeros((num, MAX_LEN, len(CHANNELS)), np.float32)
  labels = []
  for i, length in enumerate(lengths):
    while True:  # Peaks apart by MIN_GAP, clear of both ends.
      peaks = rng.choice(np.arange(3, length - 3), size=len(CHANNELS), replace=False)
      if np.min(np.diff(np.sort(peaks))) >= MIN_GAP:
        break
    steps = np.arange(length)[:, None]
    clean = np.exp(-0.5 * ((steps - peaks[None, :]) / WIDTH) ** 2)
    noisy = clean + NOISE * rng.standard_normal(clean.shape)
    x[i, :length] = OFFSETS + SCALES * noisy
    labels.append("".join(CHANNELS[c] for c in np.argsort(peaks)))
  return Sequences(x, lengths.astype(np.int32), np.array(labels), "bumps")


def write_example(out: str, num_train: int = 600, num_test: int = 300,
                  seed: int = 0) -> list[str]:
  """Write out/sequences.npz and out/Example_{TRAIN,TEST}.ts; return their paths."""
  os.makedirs(out, exist_ok=True)
  splits = {"train": make_bumps(num_train, seed), "test": make_bumps(num_test, seed + 1)}
  arrays = {}
  for split, seqs in splits.items():
    arrays.update({f"x_{split}": seqs.x, f"y_{split}": seqs.labels,
                   f"len_{split}": seqs.lengths})
  paths = [os.path.join(out, "sequences.npz")]
  np.savez_compressed(paths[0], **arrays)
  for split, seqs in splits.items():
    paths.append(os.path.join(out, f"Example_{split.upper()}.ts"))
    write_ts(paths[-1], seqs, "Example", CLASSES)
  return paths
