"""Evaluation batches of one fixed size, whatever a split's length."""

import numpy as np


def pad_batch(batch: dict, size: int, fill: dict | None = None) -> dict:
  """`batch` (arrays of n <= size rows) zero-padded to `size` rows, plus
  "mask" float32 [size]: 1 for its rows, 0 for padding. `fill` gives other
  values for the padding rows of some arrays (e.g. {"lengths": 1})."""
  n = len(next(iter(batch.values())))
  fill = fill or {}
  padded = {k: np.concatenate([v, np.full((size - n,) + v.shape[1:], fill.get(k, 0), v.dtype)])
            for k, v in batch.items()}
  padded["mask"] = (np.arange(size) < n).astype(np.float32)
  return padded
