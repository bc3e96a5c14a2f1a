"""The adding problem (Hochreiter & Schmidhuber 1997; IRNN and IndRNN papers).

Each step has two inputs: a value drawn from U(0, 1) and a marker. Exactly two
markers are 1, one in each half of the sequence; the target is the sum of the
two marked values. Predicting 1.0 always gives MSE 1/6 (about 0.167).
"""

import dataclasses

import numpy as np

from irnn_jax import configlib

STREAMS = {"train": 0, "test": 1, "valid": 2}  # Independent random streams.


def adding_batch(rng: np.random.Generator, batch_size: int, seq_len: int) -> dict:
  """inputs[B, T, 2] float32, targets[B] float32."""
  values = rng.uniform(0.0, 1.0, size=(batch_size, seq_len)).astype(np.float32)
  half = seq_len // 2
  first = rng.integers(0, half, size=batch_size)
  second = rng.integers(half, seq_len, size=batch_size)
  markers = np.zeros((batch_size, seq_len), np.float32)
  rows = np.arange(batch_size)
  markers[rows, first] = 1.0
  markers[rows, second] = 1.0
  targets = values[rows, first] + values[rows, second]
  return {"inputs": np.stack([values, markers], axis=-1), "targets": targets}


@dataclasses.dataclass
class AddingProblem:
  seq_len: int
  batch_size: int
  eval_examples: int
  eval_batch_size: int
  seed: int

  task = "regression"
  input_dim = 2
  num_outputs = 1
  readout = "last"
  vocab_size = 0
  eval_splits = ("valid", "test")

  def train_batch(self, step: int) -> dict:
    rng = np.random.default_rng([self.seed, STREAMS["train"], step])
    return adding_batch(rng, self.batch_size, self.seq_len)

  def eval_batches(self, split: str):
    if split not in self.eval_splits:
      raise ValueError(f"unknown split {split!r}")
    rng = np.random.default_rng([self.seed, STREAMS[split]])
    for start in range(0, self.eval_examples, self.eval_batch_size):
      n = min(self.eval_batch_size, self.eval_examples - start)
      batch = adding_batch(rng, self.eval_batch_size, self.seq_len)
      batch["mask"] = (np.arange(self.eval_batch_size) < n).astype(np.float32)
      yield batch


def build(data_cfg, seed: int, workdir: str) -> AddingProblem:
  del workdir
  for field in ("seq_len", "batch_size", "eval_examples", "eval_batch_size"):
    configlib.require_positive(data_cfg, field, "data")
  if data_cfg.seq_len < 2:
    raise ValueError("config.data.seq_len must be at least 2 for the adding problem")
  return AddingProblem(data_cfg.seq_len, data_cfg.batch_size,
                       data_cfg.eval_examples, data_cfg.eval_batch_size, seed)
