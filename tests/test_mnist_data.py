"""MNIST data: IDX reader, sources, views, splits, order; the MNIST configs.

Everything runs on tiny IDX files written here; nothing reads ../shared.
Set MNIST_ALL_VARIANTS=1 to train one step of every variant of every MNIST
config (about 2 minutes on 2 cores) instead of a covering subset.
"""

import importlib.util
import os
import struct

import numpy as np
import pytest

from configs.common import mnist as mnist_configs
from irnn_jax import configlib
from irnn_jax.data import build_dataset, idx, mnist, mnist_source
from tests.conftest import N_TEST, N_TRAIN, data_cfg, fake_images, idx_bytes, write, write_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = ("sequential_mnist", "permuted_mnist", "mnist_patches", "row_mnist")
def ids_of(inputs: np.ndarray) -> np.ndarray:
  """Example ids from unit-normalised pixel-view inputs [B, 784, 1]."""
  pixels = np.rint(inputs[:, :2, 0] * 255).astype(int)
  return pixels[:, 0] + 256 * pixels[:, 1]


# IDX reader.


def test_idx_reader_gz_and_raw(tmp_path):
  array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
  by_hand = (b"\x00\x00\x08\x03" b"\x00\x00\x00\x02" b"\x00\x00\x00\x02"
             b"\x00\x00\x00\x03" + bytes(range(12)))
  assert idx_bytes(array) == by_hand
  for name in ("a.idx.gz", "a.idx"):
    write(str(tmp_path / name), by_hand)
    got = idx.read_idx(str(tmp_path / name))
    assert got.dtype == np.uint8 and got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got, array)


def test_idx_reader_big_endian_types():
  shorts = b"\x00\x00\x0b\x01\x00\x00\x00\x03" b"\x00\x01" b"\xff\xfe" b"\x01\x02"
  np.testing.assert_array_equal(idx.parse_idx(shorts), [1, -2, 258])
  floats = b"\x00\x00\x0d\x01\x00\x00\x00\x01" + struct.pack(">f", 1.5)
  assert idx.parse_idx(floats).tolist() == [1.5]


@pytest.mark.parametrize("raw, message", [
    (b"\x08\x03\x00\x00", "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "element type"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "data bytes"),
    (b"\x00\x00", "too short"),
])
def test_idx_reader_rejects_bad_files(raw, message):
  with pytest.raises(ValueError, match=message):
    idx.parse_idx(raw, "f.idx")


def test_idx_reader_truncated_gzip(tmp_path):
  path = str(tmp_path / "t.gz")
  write(path, idx_bytes(np.zeros((50, 28, 28), np.uint8)))
  with open(path, "rb") as f:
    raw = f.read()
  with open(path, "wb") as f:
    f.write(raw[:len(raw) // 2])
  with pytest.raises(ValueError, match="gzip"):
    idx.read_idx(path)


def test_mnist_files_are_checked(tmp_path):
  directory = write_mnist(str(tmp_path))
  write(os.path.join(directory, "t10k-images-idx3-ubyte.gz"),
        idx_bytes(np.zeros((N_TEST, 28, 27), np.uint8)))
  with pytest.raises(ValueError, match=r"\[N, 28, 28\]"):
    build_dataset(data_cfg(directory), 0, "")
  write(os.path.join(directory, "t10k-images-idx3-ubyte.gz"),
        idx_bytes(np.zeros((N_TEST + 1, 28, 28), np.uint8)))
  with pytest.raises(ValueError, match="labels"):
    build_dataset(data_cfg(directory), 0, "")


def test_reads_uncompressed_files(tmp_path):
  directory = write_mnist(str(tmp_path), gz=False)
  ds = build_dataset(data_cfg(directory), 0, "")
  assert (ds.num_train, ds.task, ds.num_outputs, ds.readout, ds.vocab_size) == (
      N_TRAIN - 10, "classification", 10, "last", 0)
  np.testing.assert_array_equal(ds.labels["test"], np.arange(N_TEST) % 10)


# Views.


def test_view_shapes(mnist_dir, tmp_path):
  for view, patch, shape in (("pixels", 7, (784, 1)), ("permuted", 7, (784, 1)),
                             ("patches", 7, (112, 7)), ("patches", 16, (49, 16)),
                             ("rows", 7, (28, 28))):
    for seq_len in (0, shape[0]):  # The view's own, or the same number given.
      c = data_cfg(mnist_dir, view, patch_size=patch, seq_len=seq_len)
      ds = build_dataset(c, 0, str(tmp_path))
      assert (ds.seq_len, ds.input_dim) == shape
    batch = ds.train_batch(3)
    assert batch["inputs"].shape == (8,) + shape and batch["inputs"].dtype == np.float32
    assert batch["targets"].shape == (8,) and batch["targets"].dtype == np.int32
    for split in ds.eval_splits:
      for b in ds.eval_batches(split):
        assert b["inputs"].shape == (5,) + shape and b["mask"].shape == (5,)


def test_pixel_view_is_scan_line_order(mnist_dir):
  ds = build_dataset(data_cfg(mnist_dir), 0, "")
  batch = next(ds.eval_batches("test"))
  images = fake_images(N_TEST, 1000)[:5]
  np.testing.assert_allclose(batch["inputs"][:, :, 0],
                             images.reshape(5, 784) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(batch["targets"], np.arange(5))


def test_patches_and_rows_are_reshapes_of_pixels(mnist_dir):
  pixels = build_dataset(data_cfg(mnist_dir), 0, "").train_batch(4)
  for view, patch in (("patches", 7), ("patches", 28), ("rows", 7)):
    other = build_dataset(data_cfg(mnist_dir, view, patch_size=patch), 0, "")
    batch = other.train_batch(4)
    np.testing.assert_array_equal(batch["targets"], pixels["targets"])
    np.testing.assert_array_equal(batch["inputs"].reshape(8, 784, 1),
                                  pixels["inputs"])
  rows = other.train_batch(4)["inputs"]
  np.testing.assert_array_equal(rows[:, 1, :], pixels["inputs"][:, 28:56, 0])


def test_permutation_is_a_fixed_bijection_saved_in_workdir(mnist_dir, tmp_path):
  perm = mnist.make_permutation(3)
  mnist.check_permutation(perm, "test")
  np.testing.assert_array_equal(np.sort(perm), np.arange(784))
  np.testing.assert_array_equal(perm, mnist.make_permutation(3))
  assert not np.array_equal(perm, mnist.make_permutation(4))

  workdir = str(tmp_path / "run")
  ds = build_dataset(data_cfg(mnist_dir, "permuted", permutation_seed=3), 0, workdir)
  assert not os.path.exists(workdir)  # Building reads the workdir only.
  os.makedirs(workdir)
  ds.save(workdir)
  np.testing.assert_array_equal(np.load(os.path.join(workdir, "permutation.npy")), perm)
  pixels = build_dataset(data_cfg(mnist_dir), 0, "").train_batch(2)["inputs"]
  np.testing.assert_array_equal(ds.train_batch(2)["inputs"], pixels[:, perm])

  # A resumed run reuses the saved permutation, whatever the seed says now.
  np.save(os.path.join(workdir, "permutation.npy"), np.arange(784)[::-1])
  resumed = build_dataset(data_cfg(mnist_dir, "permuted", permutation_seed=9), 0,
                          workdir)
  np.testing.assert_array_equal(resumed.train_batch(2)["inputs"], pixels[:, ::-1])


@pytest.mark.parametrize("bad", [np.zeros(784, np.int64), np.arange(783),
                                 np.arange(784.0)])
def test_bad_saved_permutation_is_rejected(mnist_dir, tmp_path, bad):
  np.save(str(tmp_path / "permutation.npy"), bad)
  with pytest.raises(ValueError, match="permutation"):
    build_dataset(data_cfg(mnist_dir, "permuted"), 0, str(tmp_path))


# Normalisation.


def normalised_test_pixels(mnist_dir, how, **overrides):
  ds = build_dataset(data_cfg(mnist_dir, normalize=how, **overrides), 0, "")
  return ds, next(ds.eval_batches("test"))["inputs"][:, :, 0]


def test_unit_and_symmetric(mnist_dir):
  raw = fake_images(N_TEST, 1000)[:5].reshape(5, 784)
  _, unit = normalised_test_pixels(mnist_dir, "unit")
  _, sym = normalised_test_pixels(mnist_dir, "symmetric")
  # The first test image (id 1000) starts with pixels 232, 3, 255.
  np.testing.assert_allclose(unit[0, :3], [0.9098039, 0.0117647, 1.0], rtol=1e-5)
  np.testing.assert_allclose(sym[0, :3], [0.8196078, -0.9764706, 1.0], rtol=1e-5)
  np.testing.assert_allclose(unit, raw / 255.0, rtol=1e-6)
  np.testing.assert_allclose(sym, raw / 127.5 - 1.0, atol=1e-6)


def test_inverted_maps_white_to_minus_one(mnist_dir):
  raw = fake_images(N_TEST, 1000)[:5].reshape(5, 784).astype(np.float64)
  _, inverted = normalised_test_pixels(mnist_dir, "inverted")
  # Pixels 232, 3, 255: (255 - x) * 2 / 255 - 1.
  np.testing.assert_allclose(inverted[0, :3], [-0.8196078, 0.9764706, -1.0], rtol=1e-5)
  np.testing.assert_allclose(inverted, (255 - raw) * 2 / 255 - 1, atol=1e-6)


def test_train_examples_keeps_the_first_training_images(mnist_dir):
  ds = build_dataset(data_cfg(mnist_dir, train_examples=30, validation_size=4,
                              normalize="unit"), 0, "")
  assert ds.num_train == 26
  seen = set()
  for step in range(ds.steps_per_epoch):
    seen.update(ids_of(ds.train_batch(step)["inputs"]).tolist())
  valid = np.concatenate([ids_of(b["inputs"])[b["mask"] > 0] for b in ds.eval_batches("valid")])
  assert seen <= set(range(26)) and sorted(valid) == [26, 27, 28, 29]


@pytest.mark.parametrize("view", ["pixels", "permuted"])
def test_pixel_tokens_are_the_raw_values_in_view_order(mnist_dir, tmp_path, view):
  ds = build_dataset(data_cfg(mnist_dir, view, pixel_tokens=True), 0, str(tmp_path))
  tokens = next(ds.eval_batches("test"))["inputs"]
  raw = fake_images(N_TEST, 1000)[:5].reshape(5, 784).astype(np.int32)
  order = ds.permutation if view == "permuted" else np.arange(784)
  assert tokens.dtype == np.int32 and tokens.shape == (5, 784)
  np.testing.assert_array_equal(tokens, raw[:, order])
  assert ds.vocab_size == 256 and ds.seq_len == 784


def test_standardize_uses_the_training_part_only(tmp_path):
  train = np.zeros((8, 28, 28), np.uint8)
  train[:3, 0, 0] = 255  # Pixel 0: 255 in 3 of the 6 training examples.
  train[6:, 0, 1] = 255  # Pixel 1: 255 only in the 2 validation examples.
  train[:6, 0, 2] = [0, 51, 102, 153, 204, 255]  # Pixel 2: mean .5, std sqrt(.7 / 6).
  test = np.zeros((2, 28, 28), np.uint8)
  test[0, 0, :3] = 255
  directory = str(tmp_path)
  for prefix, images in (("train", train), ("t10k", test)):
    write(f"{directory}/{prefix}-images-idx3-ubyte.gz", idx_bytes(images))
    write(f"{directory}/{prefix}-labels-idx1-ubyte.gz", idx_bytes(np.zeros(len(images))))
  c = data_cfg(directory, normalize="standardize", validation_size=2, batch_size=2,
               eval_batch_size=2)
  ds = build_dataset(c, 0, "")
  np.testing.assert_allclose(ds.mean[:3], [0.5, 0.0, 0.5], rtol=1e-6)
  np.testing.assert_allclose(ds.std[:3], [0.5, mnist.MIN_STD, np.sqrt(0.7 / 6)], rtol=1e-5)
  x = next(ds.eval_batches("test"))["inputs"][:, :, 0]
  np.testing.assert_allclose(x[0, :3], [1.0, 10.0, 0.5 / np.sqrt(0.7 / 6)], rtol=1e-5)
  np.testing.assert_allclose(x[1, :3], [-1.0, 0.0, -0.5 / np.sqrt(0.7 / 6)], rtol=1e-5)
  assert x[0, 3] == 0.0  # Always 0: mean 0, divided by MIN_STD.
  c.min_std = 0.4  # Now pixel 2's std, sqrt(.7 / 6) = 0.34, is floored too.
  np.testing.assert_allclose(build_dataset(c, 0, "").std[:3], [0.5, 0.4, 0.4], rtol=1e-6)


# Splits and order.


def test_validation_split(mnist_dir):
  for how in ("last", "random"):
    ds = build_dataset(data_cfg(mnist_dir, validation_split=how), 0, "")
    train, valid = ds.rows["train"][1], ds.rows["valid"][1]
    assert len(train) == ds.num_train == N_TRAIN - 10 and len(valid) == 10
    assert not set(train) & set(valid)
    assert sorted(set(train) | set(valid)) == list(range(N_TRAIN))
    assert ds.eval_splits == ("valid", "test")
    seen = np.concatenate([ids_of(b["inputs"])[b["mask"] > 0]
                           for b in ds.eval_batches("valid")])
    np.testing.assert_array_equal(seen, valid)
    if how == "last":
      np.testing.assert_array_equal(valid, np.arange(N_TRAIN - 10, N_TRAIN))
  same = build_dataset(data_cfg(mnist_dir, validation_split="random"), 0, "")
  other = build_dataset(data_cfg(mnist_dir, validation_split="random"), 1, "")
  np.testing.assert_array_equal(same.rows["valid"][1], ds.rows["valid"][1])
  assert not np.array_equal(other.rows["valid"][1], ds.rows["valid"][1])

  none = build_dataset(data_cfg(mnist_dir, validation_size=0), 0, "")
  assert none.eval_splits == ("test",) and none.num_train == N_TRAIN
  with pytest.raises(ValueError, match="valid"):
    next(none.eval_batches("valid"))


def test_eval_batches_are_padded_and_capped(mnist_dir):
  ds = build_dataset(data_cfg(mnist_dir), 0, "")
  batches = list(ds.eval_batches("test"))
  assert [b["mask"].sum() for b in batches] == [5, 5, 2]
  last = batches[-1]
  assert last["mask"].tolist() == [1, 1, 0, 0, 0]
  assert not last["inputs"][2:].any() and not last["targets"][2:].any()
  seen = np.concatenate([ids_of(b["inputs"])[b["mask"] > 0] for b in batches])
  np.testing.assert_array_equal(seen, 1000 + np.arange(N_TEST))
  capped = build_dataset(data_cfg(mnist_dir, eval_examples=7), 0, "")
  assert sum(b["mask"].sum() for b in capped.eval_batches("test")) == 7


def test_train_order(mnist_dir):
  ds = build_dataset(data_cfg(mnist_dir), 0, "")
  assert ds.steps_per_epoch == (N_TRAIN - 10) // 8 == 5
  again = build_dataset(data_cfg(mnist_dir), 0, "")
  for step in (7, 0, 12, 7):  # Any order of calls: a function of (seed, step).
    np.testing.assert_array_equal(ds.train_batch(step)["inputs"],
                                  again.train_batch(step)["inputs"])
  for epoch in range(2):
    ids = np.concatenate([ids_of(ds.train_batch(epoch * 5 + i)["inputs"])
                          for i in range(5)])
    assert sorted(ids) == list(range(N_TRAIN - 10))  # Each example once.
    if epoch == 0:
      first = ids
  assert not np.array_equal(ids, first)  # A new order each epoch.
  expected = np.random.default_rng([0, 1]).permutation(N_TRAIN - 10)[:8]
  np.testing.assert_array_equal(ids_of(ds.train_batch(5)["inputs"]), expected)
  seeded = build_dataset(data_cfg(mnist_dir), 1, "")
  assert not np.array_equal(seeded.train_batch(0)["inputs"], ds.train_batch(0)["inputs"])


def test_batch_larger_than_remainder_is_dropped(tmp_path):
  directory = write_mnist(str(tmp_path), n_train=30)
  ds = build_dataset(data_cfg(directory, validation_size=3, batch_size=8), 0, "")
  assert ds.steps_per_epoch == 3  # 27 examples: 3 batches, 3 left out per epoch.
  ids = np.concatenate([ids_of(ds.train_batch(i)["inputs"]) for i in range(3)])
  assert len(set(ids)) == 24 and set(ids) <= set(range(27))


# Sources and errors.


def test_tfds_source_under_mock_data(mnist_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    arrays = mnist_source.load(data_cfg("", source="tfds"))
    for split in ("train", "test"):
      images, labels = arrays[split]
      assert images.shape == (20, 784) and images.dtype == np.uint8
      assert labels.shape == (20,) and labels.dtype == np.int32
      assert labels.min() >= 0 and labels.max() <= 9
    # "auto" falls back to TFDS when config.data.dir lacks the files.
    ds = build_dataset(data_cfg("/nonexistent", "rows", source="auto",
                                validation_size=4), 0, "")
    assert ds.num_train == 16 and ds.seq_len == 28
    assert ds.train_batch(0)["inputs"].shape == (8, 28, 28)


def test_missing_data_names_both_ways(tmp_path):
  empty = str(tmp_path / "empty")
  os.makedirs(empty)
  for source in ("files", "auto", "tfds"):
    c = data_cfg(empty, source=source, tfds_data_dir=str(tmp_path / "no_tfds"))
    with pytest.raises(FileNotFoundError) as error:
      build_dataset(c, 0, str(tmp_path))
    message = str(error.value)
    assert "config.data.dir" in message and os.path.abspath(empty) in message
    assert "train-images-idx3-ubyte.gz" in message
    assert "config.data.tfds_data_dir" in message and "tfds build mnist" in message
    if source != "files":
      assert "TFDS failed" in message
  assert not os.path.exists(str(tmp_path / "permutation.npy"))


@pytest.mark.parametrize("overrides, field", [
    ({"view": "columns"}, "config.data.view"),
    ({"view": "patches", "patch_size": 5}, "config.data.patch_size"),
    ({"view": "patches", "patch_size": 0}, "config.data.patch_size"),
    ({"view": "rows", "seq_len": 784}, "config.data.seq_len"),
    ({"normalize": "zscore"}, "config.data.normalize"),
    ({"source": "web"}, "config.data.source"),
    ({"validation_split": "first"}, "config.data.validation_split"),
    ({"validation_size": -1}, "config.data.validation_size"),
    ({"validation_size": N_TRAIN}, "config.data.validation_size"),
    ({"batch_size": N_TRAIN}, "config.data.batch_size"),
    ({"train_examples": N_TRAIN + 1}, "config.data.train_examples"),
    ({"train_examples": -1}, "config.data.train_examples"),
    ({"train_examples": 10}, "config.data.validation_size"),
    ({"min_std": 0.0}, "config.data.min_std"),
    ({"pixel_tokens": True, "view": "rows"}, "config.data.pixel_tokens"),
])
def test_bad_config_names_the_field(mnist_dir, overrides, field):
  c = data_cfg(mnist_dir)  # The pixel view.
  for key, value in overrides.items():
    c[key] = value
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    build_dataset(c, 0, "")


# Configs.


def load_config_module(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ALL_VARIANTS = [(f, v + size) for f in CONFIG_FILES for v in mnist_configs.VARIANTS
                for size in ("", "_paper")]


@pytest.mark.parametrize("name, variant", ALL_VARIANTS)
def test_every_config_variant_builds(name, variant):
  c = load_config_module(name).get_config(variant)
  configlib.validate(c)
  expected_view = {"sequential_mnist": "pixels", "permuted_mnist": "permuted",
                   "mnist_patches": "patches", "row_mnist": "rows"}[name]
  assert c.data.view == expected_view
  assert c.data.seq_len == 0  # The view's own.
  assert c.schedule.plateau_metric == "valid/loss"
  assert (c.train.num_steps > 10_000) == variant.endswith("_paper")
  if variant.startswith("irnn"):
    assert (c.model.cell, c.model.hidden_size, c.data.batch_size) == ("irnn", 100, 16)
    paper = variant.endswith("_paper")
    assert (c.optimizer.name, c.optimizer.learning_rate) == ("sgd", 1e-6 if paper else 1e-3)
    assert c.optimizer.clip_global_norm == 1.0
  if "indrnn" in variant:
    assert (c.model.num_layers, c.model.hidden_size, c.data.batch_size) == (6, 128, 32)
    assert (c.model.norm, c.model.cells.indrnn.max_magnitude) == ("sequence", 2.0)
    assert c.model.connection == ("residual" if variant.startswith("res") else "plain")
  if name == "mnist_patches" and variant.startswith("rnn"):
    assert (c.optimizer.name, c.optimizer.learning_rate) == ("rmsprop", 2e-4)


def test_patch_size_override_sets_the_number_of_steps(mnist_dir):
  c = load_config_module("mnist_patches").get_config("rnn")
  c.lock()
  c.data.update(dir=mnist_dir, source="files", validation_size=10, patch_size=4)
  assert build_dataset(c.data, 0, "").seq_len == 196


# Every variant once, and every config file once; all of them with MNIST_ALL_VARIANTS.
if os.environ.get("MNIST_ALL_VARIANTS"):
  TRAINED = [(f, v) for f in CONFIG_FILES for v in mnist_configs.VARIANTS]
else:
  TRAINED = [("sequential_mnist", v) for v in mnist_configs.VARIANTS] + [
      ("permuted_mnist", "irnn"), ("mnist_patches", "rnn"),
      ("row_mnist", "res_indrnn_paper")]


@pytest.mark.parametrize("name, variant", TRAINED)
def test_config_trains_one_step(mnist_dir, tmp_path, name, variant):
  from irnn_jax import train  # pylint: disable=g-import-not-at-top

  c = load_config_module(name).get_config(variant)
  c.data.dir = mnist_dir
  c.data.validation_size = 10
  c.data.batch_size = c.data.eval_batch_size = 8
  c.data.eval_examples = 0
  c.model.hidden_size = 16
  c.model.num_layers = min(c.model.num_layers, 3)
  c.train.num_steps = 1
  metrics = train.train_and_evaluate(c, str(tmp_path))
  assert metrics["step"] == 1
  for key in ("train/loss", "valid/accuracy", "test/loss"):
    assert np.isfinite(metrics[key])
  assert os.path.exists(tmp_path / "permutation.npy") == (c.data.view == "permuted")
