"""Labelled images: splits, the training order, padded evaluation batches.

`LabelledImages` is what every image classification data set shares (MNIST
in any view, TFDS image sets): the training source less `validation_size`
examples is "train", those examples are "valid", the test source is "test".
Subclasses say how uint8 images become model inputs (`inputs`).
`ImageClassification` serves them as images [B, H, W, C].
"""

import numpy as np

from irnn_jax.data import batches

NORMALIZATIONS = ("unit", "symmetric", "inverted", "standardize")
VALIDATION_SPLITS = ("last", "random")
# standardize: channels whose training std is below this are divided by it
# (the default of config.data.min_std).
MIN_STD = 0.1
_VALIDATION_SALT = 0x76616C69  # Keeps the validation draw apart from epoch orders.


def check_split_fields(d, counts=("validation_size", "eval_examples")) -> None:
  """ValueError naming the bad field of config.data: validation_split, the
  batch sizes (> 0) and `counts` (integers >= 0)."""
  from irnn_jax import configlib  # pylint: disable=g-import-not-at-top

  if d.validation_split not in VALIDATION_SPLITS:
    raise ValueError(f"config.data.validation_split: unknown value {d.validation_split!r}; "
                     f"choose from {VALIDATION_SPLITS}")
  for field in ("batch_size", "eval_batch_size"):
    configlib.require_positive(d, field, "data")
  for field in counts:
    if not isinstance(d[field], int) or d[field] < 0:
      raise ValueError(f"config.data.{field} must be an integer >= 0, got {d[field]!r}")


def split_train_valid(n: int, validation_size: int, how: str, seed: int):
  """(train indices, valid indices) into the n training-source examples."""
  if how == "last":
    order = np.arange(n)
  else:
    order = np.random.default_rng([_VALIDATION_SALT, seed]).permutation(n)
  cut = n - validation_size
  return np.sort(order[:cut]), np.sort(order[cut:])


def pad_images(x: np.ndarray, size: int) -> np.ndarray:
  """Zero-pad x[B, H, W, C] to [B, size, size, C], the image centred (an odd
  margin puts the extra row or column at the bottom or right); size 0 = as is."""
  height, width = x.shape[1:3]
  if not size or (height, width) == (size, size):
    return x
  if size < max(height, width):
    raise ValueError(f"cannot pad {height}x{width} images to {size}x{size}")
  top, left = (size - height) // 2, (size - width) // 2
  return np.pad(x, ((0, 0), (top, size - height - top), (left, size - width - left),
                    (0, 0)))


def channel_stats(images: np.ndarray, how: str,
                  min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std), float32 [C], so that inputs = (pixels / 255 - mean) / std.

  `images` uint8 [N, H, W, C] is the training part only; standardize floors
  the std at `min_std`.
  """
  channels = images.shape[-1]
  if how == "unit":
    return np.zeros(channels, np.float32), np.ones(channels, np.float32)
  if how == "symmetric":
    return np.full(channels, 0.5, np.float32), np.full(channels, 0.5, np.float32)
  if how == "inverted":  # 1 - 2 x / 255: white 255 -> -1, black 0 -> 1.
    return np.full(channels, 0.5, np.float32), np.full(channels, -0.5, np.float32)
  if how != "standardize":
    raise ValueError(f"config.data.normalize: unknown value {how!r}; choose from "
                     f"{NORMALIZATIONS}")
  total, squares, count = np.zeros(channels), np.zeros(channels), 0
  for start in range(0, len(images), 10_000):
    chunk = images[start:start + 10_000].astype(np.float64).reshape(-1, channels) / 255.0
    total += chunk.sum(0)
    squares += (chunk * chunk).sum(0)
    count += len(chunk)
  mean = total / max(count, 1)
  std = np.sqrt(np.maximum(squares / max(count, 1) - mean * mean, 0.0))
  return mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32)


class LabelledImages:
  """Images and labels of a training and a test source, batched by step.

  arrays: {"train": (images [N, ...] uint8, labels [N] int), "test": (...)}.
  train_batch(step): {"inputs", "targets" int32 [B]}, a function of (seed, step).
  eval_batches(split): the same plus "mask" float32 [B], padded to B.
  """

  task = "classification"
  readout = "last"
  vocab_size = 0

  def __init__(self, arrays: dict, *, num_classes: int, validation_size: int,
               validation_split: str, batch_size: int, eval_batch_size: int,
               eval_examples: int, seed: int):
    self.images = {"train": arrays["train"][0], "test": arrays["test"][0]}
    self.labels = {"train": arrays["train"][1], "test": arrays["test"][1]}
    self.num_outputs = num_classes
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.eval_examples, self.seed = eval_examples, seed
    train, valid = split_train_valid(len(self.labels["train"]), validation_size,
                                     validation_split, seed)
    # Split -> (source, indices into it).
    self.rows = {"train": ("train", train), "valid": ("train", valid),
                 "test": ("test", np.arange(len(self.labels["test"])))}
    self.eval_splits = ("valid", "test") if validation_size else ("test",)
    self.num_train = len(train)
    self.steps_per_epoch = self.num_train // batch_size
    self._order_epoch, self._order = None, None

  def inputs(self, images: np.ndarray) -> np.ndarray:
    """uint8 images [B, ...] -> float32 model inputs [B, ...]."""
    raise NotImplementedError

  def _batch(self, split: str, rows: np.ndarray) -> dict:
    source = self.rows[split][0]
    return {"inputs": self.inputs(self.images[source][rows]),
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
      yield batches.pad_batch(self._batch(split, rows[start:start + size]), size)


class ImageClassification(LabelledImages):
  """Images uint8 [N, H, W, C] served as float32 inputs [B, P, P, C]: each
  channel normalised with training statistics, zero-padded to P = pad_to
  (0: unpadded, [B, H, W, C]). seq_len is the input height."""

  def __init__(self, arrays: dict, *, normalize: str, pad_to: int, **kwargs):
    super().__init__(arrays, **kwargs)
    self.pad_to = pad_to
    self.mean, self.std = channel_stats(
        self.images["train"][self.rows["train"][1]], normalize)
    height, width, channels = self.images["train"].shape[1:]
    self.seq_len = pad_to or height
    self.input_dim = (pad_to or width) * channels  # One input row, flattened.

  def inputs(self, images: np.ndarray) -> np.ndarray:
    x = (images.astype(np.float32) / 255.0 - self.mean) / self.std
    return pad_images(x, self.pad_to)
