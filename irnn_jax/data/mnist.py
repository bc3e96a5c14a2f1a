"""Sequential MNIST (IRNN paper 4.2, IndRNN paper 4.2): an image read as a sequence.

Views (config.data.view) of an image, as inputs[T, D]:
  pixels:   T = 784, D = 1: pixels in scan-line order;
  permuted: T = 784, D = 1: pixels under one fixed permutation, drawn from
            config.data.permutation_seed and kept in workdir/permutation.npy
            (an existing file is reused, so a resumed run keeps it);
  patches:  T = 784 / k, D = k: k consecutive scan-line pixels per step
            (k = config.data.patch_size, a divisor of 784);
  rows:     T = 28, D = 28: one image row per step.

Splits: "train" is the training file less `validation_size` examples (its last
ones, or random ones fixed by the seed), which form "valid"; "test" is the
t10k file, for evaluation only. Where the files come from: mnist_source.py.
"""

import os

from absl import logging
import numpy as np

from irnn_jax import configlib
from irnn_jax.data import mnist_source
from irnn_jax.data.mnist_source import IMAGE_SIDE, NUM_CLASSES, NUM_PIXELS

VIEWS = ("pixels", "permuted", "patches", "rows")
NORMALIZATIONS = ("unit", "symmetric", "standardize")
VALIDATION_SPLITS = ("last", "random")
PERMUTATION_FILE = "permutation.npy"
# standardize: pixels whose training std is below this (the border, rarely lit
# pixels) are divided by it instead, so |inputs| <= 10 (std in [0, 1] units).
MIN_STD = 0.1
_VALIDATION_SALT = 0x76616C69  # Keeps the validation draw apart from epoch orders.


def view_shape(view: str, patch_size: int) -> tuple[int, int]:
  """(T, D) of one image under `view`."""
  if view in ("pixels", "permuted"):
    return NUM_PIXELS, 1
  if view == "patches":
    return NUM_PIXELS // patch_size, patch_size
  if view == "rows":
    return IMAGE_SIDE, IMAGE_SIDE
  raise ValueError(f"config.data.view: unknown value {view!r}; choose from {VIEWS}")


def check_permutation(perm: np.ndarray, where: str) -> np.ndarray:
  """`perm` as int64 [784] if it is a bijection of 0..783, else ValueError."""
  perm = np.asarray(perm)
  if perm.shape != (NUM_PIXELS,) or not np.issubdtype(perm.dtype, np.integer):
    raise ValueError(f"{where}: a pixel permutation must be integers of shape "
                     f"({NUM_PIXELS},), got {perm.dtype} {perm.shape}")
  if not np.array_equal(np.sort(perm), np.arange(NUM_PIXELS)):
    raise ValueError(f"{where}: not a permutation of 0..{NUM_PIXELS - 1}")
  return perm.astype(np.int64)


def make_permutation(permutation_seed: int) -> np.ndarray:
  """int64 [784]: step t of the permuted view shows pixel perm[t]."""
  return np.random.default_rng(permutation_seed).permutation(NUM_PIXELS)


def load_or_create_permutation(workdir: str, permutation_seed: int) -> np.ndarray:
  """The permutation in workdir/permutation.npy, written there first if absent."""
  perm = make_permutation(permutation_seed)
  if not workdir:
    return perm
  path = os.path.join(workdir, PERMUTATION_FILE)
  if os.path.exists(path):
    saved = check_permutation(np.load(path), path)
    if not np.array_equal(saved, perm):
      logging.warning("%s differs from the permutation of config.data."
                      "permutation_seed=%d; using the saved one.", path,
                      permutation_seed)
    return saved
  os.makedirs(workdir, exist_ok=True)
  tmp = path + ".tmp.npy"
  np.save(tmp, perm)
  os.replace(tmp, path)
  return perm


def split_train_valid(n: int, validation_size: int, how: str, seed: int):
  """(train indices, valid indices) into the n training-file examples."""
  if how == "last":
    order = np.arange(n)
  else:
    order = np.random.default_rng([_VALIDATION_SALT, seed]).permutation(n)
  cut = n - validation_size
  return np.sort(order[:cut]), np.sort(order[cut:])


def pixel_stats(images: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std), float32 [784], so that inputs = (pixels / 255 - mean) / std.

  `images` uint8 [N, 784] is the training part only.
  """
  if how == "unit":
    return np.zeros(NUM_PIXELS, np.float32), np.ones(NUM_PIXELS, np.float32)
  if how == "symmetric":
    return np.full(NUM_PIXELS, 0.5, np.float32), np.full(NUM_PIXELS, 0.5, np.float32)
  if how != "standardize":
    raise ValueError(f"config.data.normalize: unknown value {how!r}; choose from "
                     f"{NORMALIZATIONS}")
  total = np.zeros(NUM_PIXELS)
  squares = np.zeros(NUM_PIXELS)
  for start in range(0, len(images), 10_000):
    chunk = images[start:start + 10_000].astype(np.float64) / 255.0
    total += chunk.sum(0)
    squares += (chunk * chunk).sum(0)
  mean = total / len(images)
  std = np.sqrt(np.maximum(squares / len(images) - mean * mean, 0.0))
  return mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32)


class SequentialMnist:
  """MNIST images as sequences; see the module docstring.

  train_batch(step): {"inputs" float32 [B, T, D], "targets" int32 [B]}.
  eval_batches(split): the same plus "mask" float32 [B], padded to B.
  """

  task = "classification"
  num_outputs = NUM_CLASSES
  readout = "last"
  vocab_size = 0

  def __init__(self, arrays: dict, *, view: str, patch_size: int, normalize: str,
               validation_size: int, validation_split: str, batch_size: int,
               eval_batch_size: int, eval_examples: int, seed: int,
               permutation=None):
    self.images = {"train": arrays["train"][0], "test": arrays["test"][0]}
    self.labels = {"train": arrays["train"][1], "test": arrays["test"][1]}
    self.seq_len, self.input_dim = view_shape(view, patch_size)
    self.view, self.permutation = view, permutation
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.eval_examples, self.seed = eval_examples, seed
    train, valid = split_train_valid(len(self.labels["train"]), validation_size,
                                     validation_split, seed)
    # Split -> (source file, indices into it).
    self.rows = {"train": ("train", train), "valid": ("train", valid),
                 "test": ("test", np.arange(len(self.labels["test"])))}
    self.eval_splits = ("valid", "test") if validation_size else ("test",)
    self.num_train = len(train)
    self.steps_per_epoch = self.num_train // batch_size
    self.mean, self.std = pixel_stats(self.images["train"][train], normalize)
    self._order_epoch, self._order = None, None

  def sequences(self, images: np.ndarray) -> np.ndarray:
    """uint8 [B, 784] -> float32 [B, T, D] under the normalisation and view."""
    x = (images.astype(np.float32) / 255.0 - self.mean) / self.std
    if self.view == "permuted":
      x = x[:, self.permutation]
    return x.reshape(len(images), self.seq_len, self.input_dim)

  def _batch(self, split: str, rows: np.ndarray) -> dict:
    source = self.rows[split][0]
    return {"inputs": self.sequences(self.images[source][rows]),
            "targets": self.labels[source][rows].astype(np.int32)}

  def epoch_order(self, epoch: int) -> np.ndarray:
    """Positions 0..num_train-1 in the order epoch `epoch` visits them."""
    if self._order_epoch != epoch:
      self._order = np.random.default_rng([self.seed, epoch]).permutation(
          self.num_train)
      self._order_epoch = epoch
    return self._order

  def train_batch(self, step: int) -> dict:
    epoch, index = divmod(int(step), self.steps_per_epoch)
    positions = self.epoch_order(epoch)[index * self.batch_size:
                                        (index + 1) * self.batch_size]
    return self._batch("train", self.rows["train"][1][positions])

  def eval_batches(self, split: str):
    if split not in self.eval_splits:
      raise ValueError(f"unknown split {split!r}; this data set has {self.eval_splits}")
    rows = self.rows[split][1]
    if self.eval_examples:
      rows = rows[:self.eval_examples]
    size = self.eval_batch_size
    for start in range(0, len(rows), size):
      batch = self._batch(split, rows[start:start + size])
      n = len(batch["targets"])
      batch = {k: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)])
               for k, v in batch.items()}
      batch["mask"] = (np.arange(size) < n).astype(np.float32)
      yield batch


def _check_config(data_cfg):
  """Raise ValueError naming the first bad field of config.data."""
  for field, choices in (("view", VIEWS), ("normalize", NORMALIZATIONS),
                         ("validation_split", VALIDATION_SPLITS),
                         ("source", mnist_source.SOURCES)):
    if data_cfg[field] not in choices:
      raise ValueError(f"config.data.{field}: unknown value {data_cfg[field]!r}; "
                       f"choose from {choices}")
  for field in ("batch_size", "eval_batch_size"):
    configlib.require_positive(data_cfg, field, "data")
  for field in ("validation_size", "eval_examples"):
    if not isinstance(data_cfg[field], int) or data_cfg[field] < 0:
      raise ValueError(f"config.data.{field} must be an integer >= 0, got "
                       f"{data_cfg[field]!r}")
  if data_cfg.view == "patches":
    k = data_cfg.patch_size
    if not isinstance(k, int) or k <= 0 or NUM_PIXELS % k:
      raise ValueError(f"config.data.patch_size must be a positive divisor of "
                       f"{NUM_PIXELS} for view 'patches', got {k!r}")
  seq_len = view_shape(data_cfg.view, data_cfg.patch_size)[0]
  if data_cfg.seq_len != seq_len:
    raise ValueError(f"config.data.seq_len={data_cfg.seq_len} does not match view "
                     f"{data_cfg.view!r}, which has {seq_len} steps; set "
                     f"--config.data.seq_len={seq_len}")


def build(data_cfg, seed: int, workdir: str) -> SequentialMnist:
  _check_config(data_cfg)
  arrays = mnist_source.load(data_cfg)
  n_train = len(arrays["train"][1])
  if data_cfg.validation_size >= n_train:
    raise ValueError(f"config.data.validation_size={data_cfg.validation_size} "
                     f"leaves no training examples of {n_train}")
  if n_train - data_cfg.validation_size < data_cfg.batch_size:
    raise ValueError(f"config.data.batch_size={data_cfg.batch_size} exceeds the "
                     f"{n_train - data_cfg.validation_size} training examples")
  permutation = None
  if data_cfg.view == "permuted":
    permutation = load_or_create_permutation(workdir, data_cfg.permutation_seed)
  dataset = SequentialMnist(
      arrays, view=data_cfg.view, patch_size=data_cfg.patch_size,
      normalize=data_cfg.normalize, validation_size=data_cfg.validation_size,
      validation_split=data_cfg.validation_split, batch_size=data_cfg.batch_size,
      eval_batch_size=data_cfg.eval_batch_size,
      eval_examples=data_cfg.eval_examples, seed=seed, permutation=permutation)
  logging.info("MNIST %s view: %d x %d; %d train, %d valid, %d test examples; "
               "%d steps per epoch", data_cfg.view, dataset.seq_len,
               dataset.input_dim, dataset.num_train, data_cfg.validation_size,
               len(arrays["test"][1]), dataset.steps_per_epoch)
  return dataset
