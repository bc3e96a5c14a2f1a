"""HDF5 images in neon's layout: reading, writing, training on them, neon's predictions file."""

import os

import h5py
import numpy as np
import pytest

from configs import neon_renet
from experiments import make_hdf5
from irnn_jax import configlib, predictions, spatial, train
from irnn_jax.data import hdf5_images, mnist_source
from tests.conftest import N_TEST, N_TRAIN


def neon_file(path, n, shape, labels, nclass, mean=None, dtype=np.float32):
  """A neon file written with h5py alone: input[i, c*H*W + h*W + w] holds the
  value (i, c, h, w) -> 1000 i + 100 c + 10 h + w (mod 256 for uint8)."""
  channels, height, width = shape
  rows = np.zeros((n, channels * height * width), np.float64)
  for i in range(n):
    for c in range(channels):
      for h in range(height):
        for w in range(width):
          rows[i, c * height * width + h * width + w] = 1000 * i + 100 * c + 10 * h + w
  if dtype == np.uint8:
    rows = rows % 256
  with h5py.File(path, "w") as f:
    f.create_dataset("input", data=rows.astype(dtype)).attrs["lshape"] = shape
    f.create_dataset("output", data=np.asarray(labels).reshape(n, 1)).attrs["nclass"] = nclass
    if mean is not None:
      f.create_dataset("mean", data=np.asarray(mean, np.float32))
  return rows


def hdf5_cfg(directory, **overrides):
  d = configlib.base_config().data
  d.name, d.dir, d.seq_len = "hdf5", str(directory), 0
  d.validation_size, d.batch_size, d.eval_batch_size, d.eval_examples = 0, 2, 3, 0
  d.update(overrides)
  return d


def test_inputs_are_images_in_row_column_channel_order_less_the_channel_mean(tmp_path):
  shape = (2, 3, 4)
  neon_file(tmp_path / "train.h5", 5, shape, [0, 1, 0, 1, 1], 2, mean=[[1.0], [2.0]])
  neon_file(tmp_path / "test.h5", 4, shape, [1, 0, 1, 1], 2, mean=[[1.0], [2.0]])
  data = hdf5_images.build(hdf5_cfg(tmp_path, input_scale=0.5), 0, "")
  batches = list(data.eval_batches("test"))
  x = np.concatenate([b["inputs"] for b in batches])[:4]
  assert x.shape == (4, 3, 4, 2) and (data.seq_len, data.input_dim) == (3, 8)
  for i in range(4):
    for c in range(2):
      for h in range(3):
        for w in range(4):
          expected = (1000 * i + 100 * c + 10 * h + w - (1.0, 2.0)[c]) * 0.5
          assert x[i, h, w, c] == pytest.approx(expected)
  labels = np.concatenate([b["targets"] for b in batches])[:4]
  np.testing.assert_array_equal(labels, [1, 0, 1, 1])
  assert data.num_outputs == 2


def test_a_pixel_mean_is_subtracted_unless_switched_off(tmp_path):
  shape = (1, 2, 2)
  mean = np.arange(4, dtype=np.float32).reshape(4, 1) * 3
  rows = neon_file(tmp_path / "train.h5", 4, shape, [0, 1, 2, 0], 3, mean=mean, dtype=np.uint8)
  neon_file(tmp_path / "test.h5", 2, shape, [2, 1], 3, mean=mean, dtype=np.uint8)
  for subtract in (True, False):
    data = hdf5_images.build(hdf5_cfg(tmp_path, subtract_mean=subtract), 0, "")
    batch = data.train_batch(0)
    picked = batch["inputs"].reshape(2, 4)  # H, W order; one channel.
    for got in picked:
      matches = [r for r in rows if np.allclose(got, r - subtract * mean[:, 0])]
      assert len(matches) == 1


def test_training_batches_visit_every_row_once_an_epoch(tmp_path):
  neon_file(tmp_path / "train.h5", 6, (1, 1, 2), np.arange(6) % 2, 2)
  neon_file(tmp_path / "test.h5", 2, (1, 1, 2), [0, 1], 2)
  data = hdf5_images.build(hdf5_cfg(tmp_path), 3, "")
  seen = np.concatenate([data.train_batch(s)["inputs"][:, 0, 0, 0] for s in range(3)])
  np.testing.assert_array_equal(np.sort(seen), 1000.0 * np.arange(6))


def test_rows_are_read_in_any_order():
  data = np.arange(20).reshape(10, 2)
  rows = np.array([7, 2, 2, 9, 0])
  np.testing.assert_array_equal(hdf5_images.read_rows(data, rows), data[rows])


def test_write_gives_neon_layout_and_means(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 3, 4, 2), dtype=np.uint8)
  labels = np.array([0, 3, 1, 2, 3])
  for mean in ("channel", "pixel"):
    path = str(tmp_path / f"{mean}.h5")
    hdf5_images.write(path, images, labels, 4, "float32", mean)
    with h5py.File(path, "r") as f:
      assert tuple(f["input"].attrs["lshape"]) == (2, 3, 4)
      assert int(f["output"].attrs["nclass"]) == 4
      np.testing.assert_array_equal(f["output"][:, 0], labels)
      rows = f["input"][:]
      for i in range(5):
        for h in range(3):
          for w in range(4):
            for c in range(2):
              assert rows[i, c * 12 + h * 4 + w] == images[i, h, w, c]
      expected = (images.mean((0, 1, 2)).reshape(2, 1) if mean == "channel"
                  else images.transpose(0, 3, 1, 2).reshape(5, -1).mean(0).reshape(-1, 1))
      np.testing.assert_allclose(f["mean"][:], expected, rtol=1e-6)


@pytest.mark.parametrize("break_it, message", [
    (lambda f: f["input"].attrs.__delitem__("lshape"), "no attribute lshape"),
    (lambda f: f["output"].attrs.__setitem__("nclass", 1), r"labels outside 0\.\.0"),
    (lambda f: f.__delitem__("output"), "no dataset 'output'"),
    (lambda f: f.create_dataset("mean", data=np.zeros((3, 1))), "mean has shape"),
    (lambda f: f["input"].attrs.__setitem__("lshape", (1, 2, 3)), "needs"),
])
def test_a_bad_file_is_named_with_what_is_wrong(tmp_path, break_it, message):
  neon_file(tmp_path / "train.h5", 4, (1, 2, 2), [0, 1, 0, 1], 2)
  neon_file(tmp_path / "test.h5", 2, (1, 2, 2), [0, 1], 2)
  with h5py.File(tmp_path / "train.h5", "a") as f:
    break_it(f)
  with pytest.raises(ValueError, match=message) as info:
    hdf5_images.build(hdf5_cfg(tmp_path), 0, "")
  assert "train.h5" in str(info.value)


def test_train_and_test_files_must_agree_on_the_image_shape(tmp_path):
  neon_file(tmp_path / "train.h5", 4, (1, 2, 2), [0, 1, 0, 1], 2)
  neon_file(tmp_path / "test.h5", 2, (1, 2, 3), [0, 1], 2)
  with pytest.raises(ValueError, match="test.h5: images"):
    hdf5_images.build(hdf5_cfg(tmp_path), 0, "")
  with pytest.raises(FileNotFoundError, match="nope.h5"):
    hdf5_images.build(hdf5_cfg(tmp_path, test_file="nope.h5"), 0, "")


def test_make_hdf5_writes_the_mnist_pixels(mnist_dir, tmp_path):
  out = str(tmp_path / "h5")
  make_hdf5.FLAGS(["make_hdf5", f"--mnist_dir={mnist_dir}", f"--out={out}", "--pad_to=30"])
  make_hdf5.main(["make_hdf5"])
  splits = mnist_source.load_files(mnist_dir)
  for split, n in (("train", N_TRAIN), ("test", N_TEST)):
    with h5py.File(os.path.join(out, f"{split}.h5"), "r") as f:
      assert tuple(f["input"].attrs["lshape"]) == (1, 30, 30)
      images = f["input"][:].reshape(n, 30, 30)
      np.testing.assert_array_equal(images[:, 1:29, 1:29].reshape(n, -1), splits[split][0])
      assert images[:, 0].max() == 0 and images[:, -1].max() == 0
      np.testing.assert_array_equal(f["output"][:, 0], splits[split][1])


def test_max_pool_matches_a_loop_over_padded_windows():
  x = np.random.default_rng(1).normal(size=(2, 7, 6, 3)).astype(np.float32)
  got = np.asarray(spatial.max_pool(x, 2, 3, 1))
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  expected = np.empty((2, 4, 3, 3), np.float32)
  for i in range(4):
    for j in range(3):
      expected[:, i, j] = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max((1, 2))
  np.testing.assert_array_equal(got, expected)


def test_neon_network_has_the_parameters_of_its_layer_list():
  import jax  # pylint: disable=g-import-not-at-top
  from irnn_jax import models  # pylint: disable=g-import-not-at-top

  c = neon_renet.get_config()
  model = models.build_model(c.model, seq_len=128, num_outputs=2, readout="last")
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                                np.zeros((1, 128, 128, 3), np.float32),
                                                train=False))
  count = sum(np.prod(v.shape) for v in jax.tree_util.tree_leaves(variables["params"]))
  expected = 2 * 3  # Input batch norm.
  channels = 3
  for out in (32, 64, 128, 256):  # Conv with bias, batch norm.
    expected += 9 * channels * out + out + 2 * out
    channels = out
  for units in (256, 512):  # Two bidirectional tanh RNN sweeps per block, then batch norm.
    vertical_in, horizontal_in = 4 * channels, 2 * units
    for d_in in (vertical_in, horizontal_in):
      expected += 2 * (d_in * units + units + units * units)
    channels = 2 * units
    expected += 2 * channels
  expected += channels * 2 + 2  # The 1x1 class conv.
  assert count == expected


def test_neon_config_trains_on_hdf5_and_writes_inference_target(tmp_path):
  rng = np.random.default_rng(0)
  for split, n in (("train", 12), ("test", 5)):
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # Pools: 16, 8, 4; blocks: 2, 1.
    hdf5_images.write(str(tmp_path / f"{split}.h5"), images, np.arange(n) % 2, 2,
                      mean="channel")
  c = neon_renet.get_config()
  configlib.validate(c)
  c.data.dir = str(tmp_path)
  c.data.batch_size, c.data.eval_batch_size = 4, 4
  c.model.conv_channels, c.model.block_hidden_sizes = (4, 4, 4, 4), (4, 6)
  c.train.num_epochs, c.train.num_steps = 0, 2
  workdir = str(tmp_path / "run")
  metrics = train.train_and_evaluate(c, workdir)
  assert metrics["step"] == 2 and np.isfinite(metrics["test/loss"])
  path = str(tmp_path / "test_results.txt")
  result = predictions.write_predictions(workdir, "test", path, fmt="inference_target")
  with open(path) as f:
    lines = f.read().splitlines()
  assert lines[0] == "inference, target" and len(lines) == 6
  pairs = [tuple(int(v) for v in line.split(", ")) for line in lines[1:]]
  assert [t for _, t in pairs] == [0, 1, 0, 1, 0]
  assert all(p in (0, 1) for p, _ in pairs)
  accuracy = sum(p == t for p, t in pairs) / 5
  assert result["accuracy"] == pytest.approx(accuracy) == pytest.approx(metrics["test/accuracy"])
  assert predictions.file_accuracy(path) == pytest.approx(accuracy)
