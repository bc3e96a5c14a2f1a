"""Sequential MNIST (IRNN paper 4.2, IndRNN paper 4.2): an image read as a sequence.

Views (config.data.view) of an image, as inputs[T, D]:
  pixels:   T = 784, D = 1: pixels in scan-line order;
  permuted: T = 784, D = 1: pixels under one fixed permutation, drawn from
            config.data.permutation_seed and kept in workdir/permutation.npy
            (an existing file is reused, so a resumed run keeps it);
  patches:  T = 784 / k, D = k: k consecutive scan-line pixels per step
            (k = config.data.patch_size, a divisor of 784);
  rows:     T = 28, D = 28: one image row per step;
  image:    not a sequence: images [28, 28, 1], zero-padded (after the
            normalisation) to [P, P, 1] with P = config.data.pad_to if set;
            T = 28 (rows), for the IndRNN u bound only.
With config.data.pixel_tokens (pixels and permuted views) a step is the raw
pixel value as a token id in 0..255, int32 [T], which the model embeds
(vocab_size 256) instead of reading a normalised scalar.

Splits: "train" is the training file (its first config.data.train_examples
images if set) less `validation_size` examples (its last
ones, or random ones fixed by the seed), which form "valid"; "test" is the
t10k file, for evaluation only (images.LabelledImages). Where the files come
from: mnist_source.py.
"""

import os

from absl import logging
import numpy as np

from irnn_jax import configlib
from irnn_jax.data import images as images_lib
from irnn_jax.data import mnist_source
from irnn_jax.data.images import VALIDATION_SPLITS, split_train_valid  # pylint: disable=unused-import
from irnn_jax.data.mnist_source import IMAGE_SIDE, NUM_CLASSES, NUM_PIXELS

VIEWS = ("pixels", "permuted", "patches", "rows", "image")
NORMALIZATIONS = images_lib.NORMALIZATIONS
PERMUTATION_FILE = "permutation.npy"
TOKEN_VIEWS = ("pixels", "permuted")  # Views that can serve pixel tokens.
PIXEL_VALUES = 256
MIN_STD = images_lib.MIN_STD


def view_shape(view: str, patch_size: int) -> tuple[int, int]:
  """(T, D) of one image under `view`."""
  if view in ("pixels", "permuted"):
    return NUM_PIXELS, 1
  if view == "patches":
    return NUM_PIXELS // patch_size, patch_size
  if view in ("rows", "image"):
    return IMAGE_SIDE, IMAGE_SIDE
  raise ValueError(f"config.data.view: unknown value {view!r}; choose from {VIEWS}")


def num_steps(view: str, patch_size: int, pad_to: int) -> int:
  """T of one image under `view`: the image view's is its (padded) height."""
  return pad_to or IMAGE_SIDE if view == "image" else view_shape(view, patch_size)[0]


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


def load_permutation(workdir: str, permutation_seed: int) -> np.ndarray:
  """The permutation in workdir/permutation.npy, else the one of the seed."""
  perm = make_permutation(permutation_seed)
  path = os.path.join(workdir or "", PERMUTATION_FILE)
  if not workdir or not os.path.exists(path):
    return perm
  saved = check_permutation(np.load(path), path)
  if not np.array_equal(saved, perm):
    logging.warning("%s differs from the permutation of config.data."
                    "permutation_seed=%d; using the saved one.", path,
                    permutation_seed)
  return saved


def save_permutation(workdir: str, perm: np.ndarray):
  """Write workdir/permutation.npy unless it is there."""
  path = os.path.join(workdir, PERMUTATION_FILE)
  if os.path.exists(path):
    return
  tmp = path + f".{os.getpid()}.tmp.npy"  # Per process: several may write at once.
  np.save(tmp, perm)
  os.replace(tmp, path)


def pixel_stats(images: np.ndarray, how: str,
                min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std), float32 [784], so that inputs = (pixels / 255 - mean) / std.

  `images` uint8 [N, 784] is the training part only; each pixel is a channel.
  """
  return images_lib.channel_stats(images, how, min_std)


class SequentialMnist(images_lib.LabelledImages):
  """MNIST images under a view; see the module docstring.

  train_batch(step): {"inputs" float32 [B, T, D] (image: [B, P, P, 1];
  pixel_tokens: int32 [B, T]), "targets" int32 [B]}; eval_batches(split): the
  same plus "mask" float32 [B].
  """

  def __init__(self, arrays: dict, *, view: str, patch_size: int, normalize: str,
               pad_to: int = 0, permutation=None, pixel_tokens: bool = False,
               min_std: float = MIN_STD, **kwargs):
    super().__init__(arrays, num_classes=NUM_CLASSES, **kwargs)
    self.input_dim = view_shape(view, patch_size)[1]
    self.seq_len = num_steps(view, patch_size, pad_to)
    self.view, self.permutation, self.pad_to = view, permutation, pad_to
    self.pixel_tokens = pixel_tokens
    self.vocab_size = PIXEL_VALUES if pixel_tokens else 0
    self.mean, self.std = pixel_stats(self.images["train"][self.rows["train"][1]],
                                      normalize, min_std)

  def save(self, workdir: str):
    """Write what a resume needs: the pixel order of the permuted view."""
    if self.permutation is not None:
      save_permutation(workdir, self.permutation)

  def sequences(self, images: np.ndarray) -> np.ndarray:
    """uint8 [B, 784] -> float32 [B, T, D] (image: [B, P, P, 1]) under the
    normalisation and view; with pixel_tokens int32 [B, T], the raw values."""
    if self.pixel_tokens:
      x = images.astype(np.int32)
      return x[:, self.permutation] if self.view == "permuted" else x
    x = (images.astype(np.float32) / 255.0 - self.mean) / self.std
    if self.view == "permuted":
      x = x[:, self.permutation]
    if self.view == "image":
      return images_lib.pad_images(x.reshape(len(images), IMAGE_SIDE, IMAGE_SIDE, 1),
                                   self.pad_to)
    return x.reshape(len(images), self.seq_len, self.input_dim)

  inputs = sequences


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
  for field in ("validation_size", "eval_examples", "train_examples"):
    if not isinstance(data_cfg[field], int) or data_cfg[field] < 0:
      raise ValueError(f"config.data.{field} must be an integer >= 0, got "
                       f"{data_cfg[field]!r}")
  if not data_cfg.min_std > 0:
    raise ValueError(f"config.data.min_std must be positive, got {data_cfg.min_std!r}")
  if not isinstance(data_cfg.pixel_tokens, bool):
    raise ValueError(f"config.data.pixel_tokens must be True or False, got "
                     f"{data_cfg.pixel_tokens!r}")
  if data_cfg.pixel_tokens and data_cfg.view not in TOKEN_VIEWS:
    raise ValueError(f"config.data.pixel_tokens needs one pixel per step: view "
                     f"{data_cfg.view!r} is not one of {TOKEN_VIEWS}")
  if data_cfg.view == "patches":
    k = data_cfg.patch_size
    if not isinstance(k, int) or k <= 0 or NUM_PIXELS % k:
      raise ValueError(f"config.data.patch_size must be a positive divisor of "
                       f"{NUM_PIXELS} for view 'patches', got {k!r}")
  pad_to = data_cfg.pad_to
  if not isinstance(pad_to, int) or (pad_to and pad_to < IMAGE_SIDE):
    raise ValueError(f"config.data.pad_to must be 0 (no padding) or an integer "
                     f">= {IMAGE_SIDE}, got {pad_to!r}")
  seq_len = num_steps(data_cfg.view, data_cfg.patch_size, pad_to)
  if data_cfg.seq_len not in (0, seq_len):
    raise ValueError(f"config.data.seq_len={data_cfg.seq_len} does not match view "
                     f"{data_cfg.view!r}, which has {seq_len} steps; set "
                     f"--config.data.seq_len=0 (the view's own) or {seq_len}")


def build(data_cfg, seed: int, workdir: str) -> SequentialMnist:
  _check_config(data_cfg)
  arrays = mnist_source.load(data_cfg)
  n_train = len(arrays["train"][1])
  if data_cfg.train_examples:
    if data_cfg.train_examples > n_train:
      raise ValueError(f"config.data.train_examples={data_cfg.train_examples} exceeds the "
                       f"{n_train} images of the training file")
    n_train = data_cfg.train_examples
    arrays["train"] = tuple(a[:n_train] for a in arrays["train"])
  if data_cfg.validation_size >= n_train:
    raise ValueError(f"config.data.validation_size={data_cfg.validation_size} "
                     f"leaves no training examples of {n_train}")
  if n_train - data_cfg.validation_size < data_cfg.batch_size:
    raise ValueError(f"config.data.batch_size={data_cfg.batch_size} exceeds the "
                     f"{n_train - data_cfg.validation_size} training examples")
  permutation = None
  if data_cfg.view == "permuted":
    permutation = load_permutation(workdir, data_cfg.permutation_seed)
  dataset = SequentialMnist(
      arrays, view=data_cfg.view, patch_size=data_cfg.patch_size,
      normalize=data_cfg.normalize, pad_to=data_cfg.pad_to,
      validation_size=data_cfg.validation_size,
      validation_split=data_cfg.validation_split, batch_size=data_cfg.batch_size,
      eval_batch_size=data_cfg.eval_batch_size,
      eval_examples=data_cfg.eval_examples, seed=seed, permutation=permutation,
      pixel_tokens=data_cfg.pixel_tokens, min_std=data_cfg.min_std)
  shape = dataset.inputs(arrays["test"][0][:1]).shape[1:]
  logging.info("MNIST %s view: inputs %s; %d train, %d valid, %d test examples; "
               "%d steps per epoch", data_cfg.view, "x".join(map(str, shape)),
               dataset.num_train, data_cfg.validation_size,
               len(arrays["test"][1]), dataset.steps_per_epoch)
  return dataset
