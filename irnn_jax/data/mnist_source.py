"""Where the MNIST arrays come from: the four IDX files, or TFDS.

`load(data_cfg)` returns {"train": (images, labels), "test": (images, labels)}
with images uint8 [N, 784] (rows of 28 pixels, top to bottom) and labels
int32 [N] in 0..9. `config.data.source` picks the source:
  files: the IDX files in config.data.dir (".gz" or not);
  tfds:  tfds.data_source("mnist") from config.data.tfds_data_dir ("" = the
         TFDS default), prepared in the array_record format; no TensorFlow
         is needed to read it;
  auto:  the files if config.data.dir holds all four, else TFDS.
"""

import os

from absl import logging
import numpy as np

from irnn_jax.data import idx

SOURCES = ("auto", "files", "tfds")
IMAGE_SIDE = 28
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
NUM_CLASSES = 10
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_files(data_dir: str) -> tuple[dict, list[str]]:
  """({split: (images path, labels path)} for the files found, [missing names]).

  "name.gz" is preferred over "name" when both exist.
  """
  found, missing = {}, []
  for split, names in IDX_NAMES.items():
    paths = []
    for name in names:
      for candidate in (name + ".gz", name):
        path = os.path.join(data_dir, candidate)
        if data_dir and os.path.isfile(path):
          paths.append(path)
          break
      else:
        missing.append(name + ".gz")
    if len(paths) == 2:
      found[split] = tuple(paths)
  return found, missing


def check_arrays(images: np.ndarray, labels: np.ndarray, where: str):
  """Shapes [N, 28, 28] / [N], uint8, labels in 0..9; raise ValueError otherwise."""
  if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (
      IMAGE_SIDE, IMAGE_SIDE):
    raise ValueError(f"{where}: MNIST images must be uint8 [N, 28, 28], got "
                     f"{images.dtype} {list(images.shape)}")
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(f"{where}: {images.shape[0]} images but labels of shape "
                     f"{list(labels.shape)}")
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
    raise ValueError(f"{where}: labels must lie in 0..9, found "
                     f"{labels.min()}..{labels.max()}")


def load_idx_split(images_path: str, labels_path: str):
  """images uint8 [N, 784], labels int32 [N] from one pair of IDX files."""
  images, labels = idx.read_idx(images_path), idx.read_idx(labels_path)
  check_arrays(images, labels, f"{images_path} and {labels_path}")
  return images.reshape(len(images), NUM_PIXELS), labels.astype(np.int32)


def load_files(data_dir: str, tfds_data_dir: str = "") -> dict:
  found, missing = find_idx_files(data_dir)
  if missing:
    raise FileNotFoundError(missing_data_message(data_dir, tfds_data_dir, [
        f"config.data.dir={data_dir!r} lacks {', '.join(missing)}"]))
  return {split: load_idx_split(*paths) for split, paths in found.items()}


def load_tfds(tfds_data_dir: str) -> dict:
  """Both splits through tfds.data_source; never downloads."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  arrays = {}
  for split in IDX_NAMES:
    source = tfds.data_source("mnist", split=split, data_dir=tfds_data_dir or None,
                              download=False)
    n = len(source)
    images = np.empty((n, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    labels = np.empty((n,), np.int64)
    for i in range(n):  # One by one: tfds.testing.mock_data breaks __getitems__.
      example = source[i]
      image = np.asarray(example["image"])
      if image.shape != (IMAGE_SIDE, IMAGE_SIDE, 1):
        raise ValueError(f"TFDS mnist {split}[{i}]: image of shape {image.shape}, "
                         "expected (28, 28, 1)")
      images[i] = image[..., 0]
      labels[i] = example["label"]
    check_arrays(images, labels, f"TFDS mnist {split}")
    arrays[split] = images.reshape(n, NUM_PIXELS), labels.astype(np.int32)
  return arrays


def missing_data_message(data_dir: str, tfds_data_dir: str, reasons: list[str]) -> str:
  where = os.path.abspath(data_dir) if data_dir else "(unset)"
  files = ", ".join(f"{name}.gz" for names in IDX_NAMES.values() for name in names)
  return (
      "MNIST data not found (" + "; ".join(reasons) + ").\n"
      "Provide it in one of two ways:\n"
      f"  1. put the four IDX files {files} (or the same names without .gz) in "
      f"config.data.dir (now {where}), e.g. --config.data.dir=/path/to/mnist;\n"
      "  2. prepare the TFDS 'mnist' data set in the array_record format (on a "
      "machine with TensorFlow and internet: `tfds build mnist "
      "--file_format=array_record`) and set config.data.tfds_data_dir to its "
      f"data dir (now {tfds_data_dir!r}; '' means the TFDS default, "
      "~/tensorflow_datasets or $TFDS_DATA_DIR), with config.data.source="
      "'tfds' or 'auto'.")


def load(data_cfg) -> dict:
  """{"train": (images [N, 784] uint8, labels [N] int32), "test": (...)}."""
  source, data_dir, tfds_dir = data_cfg.source, data_cfg.dir, data_cfg.tfds_data_dir
  if source not in SOURCES:
    raise ValueError(f"config.data.source: unknown value {source!r}; choose from "
                     f"{SOURCES}")
  if source == "files":
    return load_files(data_dir, tfds_dir)
  reasons = []
  if source == "auto":
    found, missing = find_idx_files(data_dir)
    if not missing:
      logging.info("MNIST: reading IDX files from %s", os.path.abspath(data_dir))
      return {split: load_idx_split(*paths) for split, paths in found.items()}
    reasons.append(f"config.data.dir={data_dir!r} lacks {', '.join(missing)}")
  try:
    arrays = load_tfds(tfds_dir)
  except Exception as e:  # pylint: disable=broad-except
    reasons.append(f"TFDS failed: {type(e).__name__}: {e}")
    raise FileNotFoundError(missing_data_message(data_dir, tfds_dir, reasons)) from e
  logging.info("MNIST: read through TFDS (data_dir=%r)", tfds_dir or None)
  return arrays
