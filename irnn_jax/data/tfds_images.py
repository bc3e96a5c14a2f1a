"""Any TFDS image classification data set, read without TensorFlow.

config.data.name = "tfds_image"; config.data.tfds_name names the set (e.g.
"cifar10"), prepared beforehand in the array_record format (on a machine with
TensorFlow and internet: `tfds build cifar10 --file_format=array_record`) under
config.data.tfds_data_dir ("" = the TFDS default). Nothing is downloaded.
"train" is config.data.train_split less `validation_size` examples, which form
"valid"; "test" is config.data.test_split. Inputs are float32 [B, H, W, C]
(see images.ImageClassification); the set's images must all have one shape.
"""

from absl import logging
import numpy as np

from irnn_jax.data import images as images_lib


def feature_keys(info) -> tuple[str, str]:
  """(image key, label key): the set's supervised keys, else image/label."""
  keys = info.supervised_keys
  if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
    return keys
  return "image", "label"


def load_split(name: str, split: str, data_dir: str):
  """(images uint8 [N, H, W, C], labels int32 [N], number of classes)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  source = tfds.data_source(name, split=split, data_dir=data_dir or None,
                            download=False)
  info = source.dataset_info
  image_key, label_key = feature_keys(info)
  shape = tuple(info.features[image_key].shape)
  if None in shape or len(shape) != 3:
    raise ValueError(f"TFDS {name}: images of shape {shape}; only sets whose "
                     "images all have one shape [H, W, C] are supported")
  num_classes = info.features[label_key].num_classes
  images = np.empty((len(source),) + shape, np.uint8)
  labels = np.empty((len(source),), np.int64)
  for i in range(len(source)):  # One by one: tfds.testing.mock_data breaks __getitems__.
    example = source[i]
    images[i] = np.asarray(example[image_key])
    labels[i] = example[label_key]
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"TFDS {name} {split}: labels outside 0..{num_classes - 1}")
  return images, labels.astype(np.int32), num_classes


def _check_config(d):
  if d.normalize not in images_lib.NORMALIZATIONS:
    raise ValueError(f"config.data.normalize: unknown value {d.normalize!r}; "
                     f"choose from {images_lib.NORMALIZATIONS}")
  images_lib.check_split_fields(d, ("validation_size", "eval_examples", "pad_to"))
  if not d.tfds_name:
    raise ValueError("config.data.tfds_name must name a TFDS data set, e.g. 'cifar10'")


def build(data_cfg, seed: int, workdir: str) -> images_lib.ImageClassification:
  del workdir
  d = data_cfg
  _check_config(d)
  train_images, train_labels, num_classes = load_split(d.tfds_name, d.train_split,
                                                       d.tfds_data_dir)
  test_images, test_labels, _ = load_split(d.tfds_name, d.test_split, d.tfds_data_dir)
  if test_images.shape[1:] != train_images.shape[1:]:
    raise ValueError(f"TFDS {d.tfds_name}: train images {train_images.shape[1:]} "
                     f"but test images {test_images.shape[1:]}")
  if d.pad_to and d.pad_to < max(train_images.shape[1:3]):
    raise ValueError(f"config.data.pad_to={d.pad_to} is smaller than the "
                     f"{train_images.shape[1]}x{train_images.shape[2]} images")
  height = d.pad_to or train_images.shape[1]
  if d.seq_len not in (0, height):
    raise ValueError(f"config.data.seq_len={d.seq_len}: the images have {height} rows; "
                     "set 0 (the image height) or that")
  n_train = len(train_labels)
  if n_train - d.validation_size < d.batch_size:
    raise ValueError(f"config.data.validation_size={d.validation_size} and "
                     f"batch_size={d.batch_size} do not fit {n_train} training examples")
  dataset = images_lib.ImageClassification(
      {"train": (train_images, train_labels), "test": (test_images, test_labels)},
      normalize=d.normalize, pad_to=d.pad_to, num_classes=num_classes,
      validation_size=d.validation_size, validation_split=d.validation_split,
      batch_size=d.batch_size, eval_batch_size=d.eval_batch_size,
      eval_examples=d.eval_examples, seed=seed)
  logging.info("TFDS %s: images %s, %d classes; %d train, %d valid, %d test",
               d.tfds_name, train_images.shape[1:], num_classes, dataset.num_train,
               d.validation_size, len(test_labels))
  return dataset
