"""Your own sequences: a .npz file ("arrays") or UCR/UEA .ts files ("ts").

config.data.path names the .npz file (sequence_files.read_npz); for .ts,
config.data.train_path and optional valid_path and test_path. Without a
validation split, config.data.valid_fraction of train (fixed by config.seed)
is held out as "valid". The task is config.data.task, or with "auto" what the
training labels say. Class labels map to 0..K-1 in sorted order of their
names (numeric names in numeric order).

Batches: "inputs" float32 [B, T, C] (standardised per channel over the valid
steps of the training split with config.data.standardize; zero past each
length), "targets" int32 [B] (classes) or float32 [B] / [B, K] (regression),
"lengths" int32 [B]; evaluation batches add "mask" float32 [B] (padding rows
have length 1). T is the longest sequence of any split.

save(workdir) writes workdir/sequence_data.json (task, class names, channel
mean and std); a later build with that workdir uses its statistics, and fails
if the data's task or classes differ.
"""

import json
import os

from absl import logging
import numpy as np

from irnn_jax import configlib
from irnn_jax.data import batches, images, sequence_files
from irnn_jax.data.sequence_files import SequenceFileError, Sequences

DATA_FILE = "sequence_data.json"
_ORDER_SALT = 0x6F726472  # Keeps epoch orders apart from other draws of the seed.


def channel_stats(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) float32 [C] over the valid steps of `seqs`; std 1 for a
  constant channel."""
  valid = np.arange(seqs.x.shape[1])[None, :] < seqs.lengths[:, None]
  steps = seqs.x[valid].astype(np.float64)  # [steps, C]
  mean, std = steps.mean(0), steps.std(0)
  std = np.where(std > 1e-7 * np.maximum(np.abs(mean), 1.0), std, 1.0)
  return mean.astype(np.float32), std.astype(np.float32)


def pad_steps(seqs: Sequences, width: int) -> Sequences:
  """`seqs` with x zero-padded to `width` steps."""
  extra = width - seqs.x.shape[1]
  x = np.pad(seqs.x, ((0, 0), (0, extra), (0, 0))) if extra else seqs.x
  return Sequences(x, seqs.lengths, seqs.labels, seqs.where)


def take(seqs: Sequences, rows: np.ndarray) -> Sequences:
  return Sequences(seqs.x[rows], seqs.lengths[rows], seqs.labels[rows], seqs.where)


class SequenceData:
  """Splits of labelled sequences, batched; see the module docstring.

  splits: {"train", "valid", optional "test"} -> Sequences with labels already
  as targets (int class indices or floats), all padded to one T.
  """

  readout = "last"
  vocab_size = 0

  def __init__(self, splits: dict, *, task: str, class_names, mean, std,
               batch_size: int, eval_batch_size: int, eval_examples: int, seed: int,
               fill_missing: str = ""):
    self.task, self.class_names, self.fill_missing = task, class_names, fill_missing
    self.mean, self.std = mean, std
    train = splits["train"]
    self.seq_len, self.input_dim = train.x.shape[1:]
    targets = train.labels
    self.num_outputs = len(class_names) if task == "classification" else (
        1 if targets.ndim == 1 else targets.shape[1])
    self.eval_splits = tuple(s for s in ("valid", "test") if s in splits)
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.eval_examples, self.seed = eval_examples, seed
    self.examples_per_epoch = len(targets)
    self.steps_per_epoch = self.examples_per_epoch // batch_size
    self.splits = {name: self._standardized(s) for name, s in splits.items()}
    self._order_epoch, self._order = None, None

  def _standardized(self, seqs: Sequences) -> Sequences:
    dtype = np.int32 if self.task == "classification" else np.float32
    return Sequences(self._standardize(seqs), seqs.lengths, seqs.labels.astype(dtype),
                     seqs.where)

  def _standardize(self, seqs: Sequences) -> np.ndarray:
    """Checked sequences' x, standardised, zero past each length (float32)."""
    valid = np.arange(seqs.x.shape[1])[None, :, None] < seqs.lengths[:, None, None]
    return np.where(valid, (seqs.x - self.mean) / self.std, 0.0).astype(np.float32)

  def prepare_inputs(self, x, lengths=None) -> np.ndarray:
    """Raw x[B, T, C] (or [B, T]) as the files hold them -> the model's inputs:
    missing values (NaN) filled as in training (config.data.fill_missing, else
    an error), standardised with this data set's statistics, zero past each
    length."""
    x = np.asarray(x, np.float64)
    x = x[..., None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[2] != self.input_dim:
      raise ValueError(f"inputs of shape {x.shape}: expected [B, T, {self.input_dim}] "
                       f"(or [B, T] for one channel)")
    return self._standardize(sequence_files.check_sequences(
        x, np.zeros(len(x)), lengths, ("inputs", "labels", "seq_lengths"), self.fill_missing))

  def save(self, workdir: str):
    """Write workdir/sequence_data.json unless it is there."""
    path = os.path.join(workdir, DATA_FILE)
    if os.path.exists(path):
      return
    saved = {"task": self.task, "class_names": self.class_names and list(self.class_names),
             "input_dim": int(self.input_dim), "num_outputs": int(self.num_outputs),
             "mean": self.mean.tolist(), "std": self.std.tolist()}
    tmp = path + f".{os.getpid()}.tmp"  # Per process: several may write at once.
    with open(tmp, "w") as f:
      json.dump(saved, f, indent=1)
    os.replace(tmp, path)

  def _batch(self, split: str, rows: np.ndarray) -> dict:
    seqs = self.splits[split]
    return {"inputs": seqs.x[rows], "targets": seqs.labels[rows],
            "lengths": seqs.lengths[rows]}

  def epoch_order(self, epoch: int) -> np.ndarray:
    """Training rows in the order epoch `epoch` visits them."""
    if self._order_epoch != epoch:
      self._order = np.random.default_rng([_ORDER_SALT, self.seed, epoch]).permutation(
          self.examples_per_epoch)
      self._order_epoch = epoch
    return self._order

  def train_batch(self, step: int) -> dict:
    """A function of (seed, step): batch `index` of epoch `epoch`'s order."""
    epoch, index = divmod(int(step), self.steps_per_epoch)
    size = self.batch_size
    return self._batch("train", self.epoch_order(epoch)[index * size:(index + 1) * size])

  def eval_batches(self, split: str):
    if split not in self.eval_splits:
      raise ValueError(f"unknown split {split!r}; this data set has {self.eval_splits}")
    rows = np.arange(len(self.splits[split].lengths))
    if self.eval_examples:
      rows = rows[:self.eval_examples]
    size = self.eval_batch_size
    for start in range(0, len(rows), size):
      yield batches.pad_batch(self._batch(split, rows[start:start + size]), size,
                              fill={"lengths": 1})


def _check_config(data_cfg, path_fields: tuple[str, ...]):
  """Raise naming the first bad field of config.data for these data sets."""
  for field in ("batch_size", "eval_batch_size"):
    configlib.require_positive(data_cfg, field, "data")
  if not isinstance(data_cfg.eval_examples, int) or data_cfg.eval_examples < 0:
    raise ValueError(f"config.data.eval_examples must be an integer >= 0, got "
                     f"{data_cfg.eval_examples!r}")
  for field in path_fields:
    path = data_cfg[field]
    if field in ("path", "train_path") and not path:
      raise ValueError(f"config.data.{field} is empty: set it to your "
                       f"{'.npz' if field == 'path' else '.ts'} file")
    if path and not os.path.isfile(path):
      raise FileNotFoundError(f"config.data.{field}: {os.path.abspath(path)} not found")


def _saved(workdir: str):
  path = os.path.join(workdir or "", DATA_FILE)
  if not workdir or not os.path.exists(path):
    return None, path
  with open(path) as f:
    return json.load(f), path


def _targets(splits: dict, task: str, classes):
  """Labels of every split as class indices (classification) or floats."""
  out = {}
  for name, seqs in splits.items():
    where = seqs.where
    if task == "classification":
      if seqs.labels.ndim != 1:
        raise SequenceFileError(f"{where}: class labels must have shape (N,), got "
                                f"{seqs.labels.shape}")
      labels = sequence_files.encode_labels(
          sequence_files.label_names(seqs.labels, where), classes, where)
    else:
      labels = seqs.labels.astype(np.float64)
      if labels.shape[1:] != splits["train"].labels.shape[1:]:
        raise SequenceFileError(f"{where}: targets of shape {labels.shape[1:]} per "
                                f"example, train has {splits['train'].labels.shape[1:]}")
      if not np.all(np.isfinite(labels)):
        raise SequenceFileError(f"{where}: regression targets must be finite")
    out[name] = Sequences(seqs.x, seqs.lengths, labels, where)
  return out


def build_from(splits: dict, data_cfg, seed: int, workdir: str, declared=None):
  """A checked SequenceData from read splits ("train", optional "valid", "test");
  `declared`: class names a file's header lists (.ts), else those of train."""
  train = splits["train"]
  task = sequence_files.infer_task(train.labels, data_cfg.task, train.where)
  classes = None
  if task == "classification":
    names = sequence_files.label_names(train.labels, train.where)
    classes = sequence_files.sorted_classes(declared if declared is not None else names)
    if len(set(names)) < 2:
      raise SequenceFileError(f"{train.where}: {len(set(names))} class(es) in the training "
                              "labels; classification needs at least two")
  if len({s.x.shape[2] for s in splits.values()}) > 1:
    raise SequenceFileError(
        "every split needs the same number of features a step; got "
        + ", ".join(f"{s.x.shape[2]} in {s.where}" for s in splits.values()))
  if "valid" not in splits and data_cfg.valid_fraction > 0:
    n = len(train.lengths)
    size = max(1, round(data_cfg.valid_fraction * n))
    if size >= n:
      raise ValueError(f"config.data.valid_fraction={data_cfg.valid_fraction} leaves no "
                       f"training examples of {n}")
    rows, valid_rows = images.split_train_valid(n, size, "random", seed)
    splits = {**splits, "train": take(train, rows), "valid": take(train, valid_rows)}
    splits["valid"].where = f"{train.where} (valid_fraction)"
  if set(splits) == {"train"}:
    raise ValueError("nothing to evaluate: give a test or validation split, or "
                     "config.data.valid_fraction > 0")
  n_train = len(splits["train"].lengths)
  if data_cfg.batch_size > n_train:
    raise ValueError(f"config.data.batch_size={data_cfg.batch_size} exceeds the {n_train} "
                     "training examples")
  seq_len = max(int(s.lengths.max()) for s in splits.values())
  if data_cfg.seq_len not in (0, seq_len):
    raise ValueError(f"config.data.seq_len={data_cfg.seq_len}, but the longest sequence has "
                     f"{seq_len} steps; set --config.data.seq_len=0 (the data's own) or "
                     f"{seq_len}")
  splits = _targets({k: pad_steps(s, seq_len) if s.x.shape[1] < seq_len else
                     Sequences(s.x[:, :seq_len], s.lengths, s.labels, s.where)
                     for k, s in splits.items()}, task, classes)
  mean, std = channel_stats(splits["train"])
  if not data_cfg.standardize:
    mean, std = np.zeros_like(mean), np.ones_like(std)
  saved, path = _saved(workdir)
  if saved is not None:
    targets = splits["train"].labels
    ours = {"task": task, "class_names": classes and list(classes),
            "input_dim": int(mean.shape[0]),
            "num_outputs": len(classes) if classes else int(np.prod(targets.shape[1:]))}
    for key, value in ours.items():
      if saved.get(key) != value:
        raise ValueError(f"{path} has {key}={saved.get(key)!r}, but the data give "
                         f"{value!r}: the data changed since this run started; use a new "
                         "workdir")
    mean, std = np.array(saved["mean"], np.float32), np.array(saved["std"], np.float32)
  dataset = SequenceData(splits, task=task, class_names=classes, mean=mean, std=std,
                         batch_size=data_cfg.batch_size,
                         eval_batch_size=data_cfg.eval_batch_size,
                         eval_examples=data_cfg.eval_examples, seed=seed,
                         fill_missing=data_cfg.fill_missing)
  logging.info("%s sequences: %s; T=%d, %d channels, %d outputs; %d steps per epoch",
               task, ", ".join(f"{len(s.lengths)} {k}" for k, s in splits.items()),
               dataset.seq_len, dataset.input_dim, dataset.num_outputs,
               dataset.steps_per_epoch)
  return dataset


def build_arrays(data_cfg, seed: int, workdir: str) -> SequenceData:
  """config.data.name = "arrays": the .npz file config.data.path."""
  _check_config(data_cfg, ("path",))
  splits = sequence_files.read_npz(data_cfg.path, data_cfg.fill_missing)
  return build_from(splits, data_cfg, seed, workdir)


def build_ts(data_cfg, seed: int, workdir: str) -> SequenceData:
  """config.data.name = "ts": config.data.train_path, valid_path, test_path."""
  fields = ("train_path", "valid_path", "test_path")
  _check_config(data_cfg, fields)
  splits, declared = {}, None
  for field in fields:
    if data_cfg[field]:
      header, splits[field.removesuffix("_path")] = sequence_files.read_ts(
          data_cfg[field], data_cfg.fill_missing)
      if field == "train_path":
        declared = header.class_labels
  return build_from(splits, data_cfg, seed, workdir, declared)
