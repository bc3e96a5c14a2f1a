"""Labelled images from HDF5 files in neon's layout, one file per split.

A file holds:
  input   [N, C*H*W] float or uint8, each row one image in (channel, row,
          column) order, with the attribute lshape = (C, H, W);
  output  [N, 1] integer labels, with the attribute nclass;
  mean    optional, [C, 1] (per channel) or [C*H*W, 1] (per pixel), subtracted
          from every image when config.data.subtract_mean is set.
config.data.name = "hdf5" reads config.data.dir/train_file as train (less
validation_size examples, which form "valid") and dir/test_file as test.
Inputs are float32 (input - mean) * config.data.input_scale, served as
images [B, H, W, C] (rows are the sequence for a recurrent model). Batches are
read from the files as they are needed, so a set larger than memory trains.
`write` makes such a file; experiments/make_hdf5.py writes MNIST with it.
"""

import os

from absl import logging
import numpy as np

from irnn_jax.data import images as images_lib

DTYPES = ("uint8", "float32")


def _require(f, name: str, path: str):
  if name not in f:
    raise ValueError(f"{path}: no dataset {name!r}; a neon HDF5 file has 'input' "
                     "(with attribute lshape), 'output' (with attribute nclass) and "
                     "optionally 'mean'")
  return f[name]


class NeonFile:
  """One open file: `images` (the input dataset), `labels` int32 [N], `shape`
  (C, H, W), `num_classes`, `mean` float32 [C, H, W] or None."""

  def __init__(self, path: str):
    import h5py  # pylint: disable=g-import-not-at-top

    if not os.path.exists(path):
      raise FileNotFoundError(f"no HDF5 file {path}")
    self.path = path
    self.file = h5py.File(path, "r")
    images = _require(self.file, "input", path)
    if "lshape" not in images.attrs:
      raise ValueError(f"{path}: dataset 'input' has no attribute lshape = (C, H, W)")
    self.shape = tuple(int(v) for v in images.attrs["lshape"])
    if len(self.shape) != 3 or min(self.shape) <= 0:
      raise ValueError(f"{path}: input.attrs['lshape'] = {self.shape}; expected (C, H, W)")
    size = int(np.prod(self.shape))
    if images.ndim != 2 or images.shape[1] != size:
      raise ValueError(f"{path}: input has shape {images.shape}; lshape {self.shape} "
                       f"needs [N, {size}]")
    if images.dtype not in (np.uint8, np.float16, np.float32, np.float64):
      raise ValueError(f"{path}: input has dtype {images.dtype}; expected float or uint8")
    self.images = images
    output = _require(self.file, "output", path)
    if "nclass" not in output.attrs:
      raise ValueError(f"{path}: dataset 'output' has no attribute nclass")
    self.num_classes = int(np.asarray(output.attrs["nclass"]).reshape(()))
    labels = np.asarray(output)
    if labels.shape not in ((len(images), 1), (len(images),)):
      raise ValueError(f"{path}: output has shape {labels.shape}; expected "
                       f"[{len(images)}, 1], one label per input row")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
      if not np.all(labels == np.round(labels)):
        raise ValueError(f"{path}: output holds non-integer labels")
    labels = labels.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
      raise ValueError(f"{path}: labels outside 0..{self.num_classes - 1} (nclass "
                       f"{self.num_classes})")
    self.labels = labels.astype(np.int32)
    self.mean = None
    if "mean" in self.file:
      mean = np.asarray(self.file["mean"], np.float32)
      channels = self.shape[0]
      if mean.size == channels:
        mean = np.broadcast_to(mean.reshape(channels, 1, 1), self.shape)
      elif mean.size == size:
        mean = mean.reshape(self.shape)
      else:
        raise ValueError(f"{path}: mean has shape {mean.shape}; expected [{channels}, 1] "
                         f"or [{size}, 1]")
      self.mean = np.ascontiguousarray(mean)


def read_rows(dataset, rows: np.ndarray) -> np.ndarray:
  """dataset[rows] for any order of rows (h5py reads increasing indices only)."""
  rows = np.asarray(rows)
  unique, inverse = np.unique(rows, return_inverse=True)
  return np.asarray(dataset[unique])[inverse]


class HDF5Images(images_lib.LabelledImages):
  """A train and a test NeonFile served as float32 images [B, H, W, C]."""

  def __init__(self, train: NeonFile, test: NeonFile, *, input_scale: float,
               subtract_mean: bool, **kwargs):
    super().__init__({"train": (train.images, train.labels),
                      "test": (test.images, test.labels)},
                     num_classes=train.num_classes, **kwargs)
    self.shape = train.shape
    self.means = {"train": train.mean if subtract_mean else None,
                  "test": test.mean if subtract_mean else None}
    self.input_scale = float(input_scale)
    channels, height, width = train.shape
    self.seq_len, self.input_dim = height, width * channels

  def _batch(self, split: str, rows: np.ndarray) -> dict:
    source = self.rows[split][0]
    x = read_rows(self.images[source], rows).astype(np.float32)
    x = x.reshape((len(rows),) + self.shape)
    if self.means[source] is not None:
      x = x - self.means[source]
    x = (x * self.input_scale).transpose(0, 2, 3, 1)
    return {"inputs": np.ascontiguousarray(x),
            "targets": self.labels[source][rows].astype(np.int32)}


def _check_config(d):
  images_lib.check_split_fields(d)
  for field in ("train_file", "test_file"):
    if not d[field]:
      raise ValueError(f"config.data.{field} must name an HDF5 file in config.data.dir")
  if not d.input_scale > 0:
    raise ValueError(f"config.data.input_scale must be > 0, got {d.input_scale}")


def build(data_cfg, seed: int, workdir: str) -> HDF5Images:
  del workdir
  d = data_cfg
  _check_config(d)
  train = NeonFile(os.path.join(d.dir, d.train_file))
  test = NeonFile(os.path.join(d.dir, d.test_file))
  if test.shape != train.shape:
    raise ValueError(f"{test.path}: images {test.shape}, but {train.path} has {train.shape}")
  if test.num_classes != train.num_classes:
    raise ValueError(f"{test.path}: nclass {test.num_classes}, but {train.path} has "
                     f"{train.num_classes}")
  if d.seq_len not in (0, train.shape[1]):
    raise ValueError(f"config.data.seq_len={d.seq_len}: the images have {train.shape[1]} "
                     "rows; set 0 (the image height) or that")
  if len(train.labels) - d.validation_size < d.batch_size:
    raise ValueError(f"config.data.validation_size={d.validation_size} and batch_size="
                     f"{d.batch_size} do not fit the {len(train.labels)} examples of "
                     f"{train.path}")
  dataset = HDF5Images(train, test, input_scale=d.input_scale,
                       subtract_mean=d.subtract_mean, validation_size=d.validation_size,
                       validation_split=d.validation_split, batch_size=d.batch_size,
                       eval_batch_size=d.eval_batch_size, eval_examples=d.eval_examples,
                       seed=seed)
  logging.info("HDF5 %s: images %s (C, H, W), %d classes; %d train, %d valid, %d test",
               d.dir, train.shape, train.num_classes, dataset.num_train,
               d.validation_size, len(test.labels))
  return dataset


def write(path: str, images: np.ndarray, labels: np.ndarray, num_classes: int,
          dtype: str = "uint8", mean: str = "none") -> None:
  """Write images[N, H, W, C] and labels[N] as a neon HDF5 file. dtype: uint8 |
  float32 (the input dataset); mean: none | channel | pixel (the mean dataset,
  of these images)."""
  import h5py  # pylint: disable=g-import-not-at-top

  if dtype not in DTYPES:
    raise ValueError(f"dtype: unknown value {dtype!r}; choose from {DTYPES}")
  if images.ndim != 4 or len(images) != len(labels):
    raise ValueError(f"images {images.shape} and labels {labels.shape}: expected "
                     "[N, H, W, C] and [N]")
  n, height, width, channels = images.shape
  chw = images.transpose(0, 3, 1, 2).reshape(n, -1)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with h5py.File(tmp, "w") as f:
    data = f.create_dataset("input", data=chw.astype(dtype))
    data.attrs["lshape"] = (channels, height, width)
    out = f.create_dataset("output", data=np.asarray(labels, np.int32).reshape(n, 1))
    out.attrs["nclass"] = int(num_classes)
    if mean == "channel":
      f.create_dataset("mean", data=chw.reshape(n, channels, -1).mean((0, 2),
                                                                      dtype=np.float64)
                       .astype(np.float32).reshape(channels, 1))
    elif mean == "pixel":
      f.create_dataset("mean", data=chw.mean(0, dtype=np.float64).astype(np.float32)
                       .reshape(-1, 1))
    elif mean != "none":
      raise ValueError(f"mean: unknown value {mean!r}; choose from none, channel, pixel")
  os.replace(tmp, path)
