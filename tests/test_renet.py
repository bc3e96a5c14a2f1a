"""Spatial RNN (ReNet): patch layout, sweeps against the cell run by hand, the
classifier, the image data, training end to end and the predictions file."""

import csv
import functools
import importlib.util
import os

import jax
import numpy as np
import pytest

from irnn_jax import configlib, models, predictions, spatial, train
from irnn_jax.cells import GRUCell, IndRNNCell, IRNNCell, LSTMCell
from irnn_jax.data import build_dataset, images
from tests.conftest import N_TEST, data_cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name, variant):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def _x(shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# Layout.


@pytest.mark.parametrize("ph, pw", [(1, 1), (2, 2), (3, 2), (1, 4)])
def test_split_and_merge_patches_round_trip(ph, pw):
  x = _x((2, 6, 8, 3))
  grid = np.asarray(spatial.split_patches(x, ph, pw))
  assert grid.shape == (2, 6 // ph, 8 // pw, ph * pw * 3)
  for b, i, j in ((0, 0, 0), (1, 6 // ph - 1, 8 // pw - 1), (1, 0, 8 // pw - 1)):
    patch = x[b, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw, :]
    np.testing.assert_array_equal(grid[b, i, j], patch.reshape(-1))
  np.testing.assert_array_equal(np.asarray(spatial.merge_patches(grid, ph, pw)), x)


def test_column_and_row_sequences_round_trip():
  grid = _x((2, 3, 4, 5))
  cols = np.asarray(spatial.columns_to_sequences(grid))
  rows = np.asarray(spatial.rows_to_sequences(grid))
  assert cols.shape == (3, 8, 5) and rows.shape == (4, 6, 5)
  np.testing.assert_array_equal(cols[:, 1 * 4 + 2], grid[1, :, 2])  # Column 2 of image 1.
  np.testing.assert_array_equal(rows[:, 1 * 3 + 2], grid[1, 2, :])  # Row 2 of image 1.
  np.testing.assert_array_equal(np.asarray(spatial.sequences_to_columns(cols, 2)), grid)
  np.testing.assert_array_equal(np.asarray(spatial.sequences_to_rows(rows, 2)), grid)


def test_patches_must_divide_the_map():
  with pytest.raises(ValueError, match="pad_to"):
    spatial.split_patches(_x((1, 7, 8, 1)), 2, 2)


# Sweeps against the cell run on one column or row alone.

CELLS = {
    "indrnn": IndRNNCell(features=4, input_std=0.5, u_low=-0.9, u_high=0.9),
    "irnn": IRNNCell(features=4, input_std=0.5, identity_scale=0.5),
    "lstm": LSTMCell(features=4, input_init="glorot"),
    "gru": GRUCell(features=4, input_init="glorot"),
}


@functools.lru_cache(maxsize=None)
def _sweeps(kind):
  """Block input x, its patch grid, the vertical sweep's output as a grid, the
  block output and the parameters."""
  block = spatial.SpatialRNN(CELLS[kind], patch=(2, 1))
  x = _x((2, 6, 4, 3))  # Grid 3 x 4: columns of 3 patches, rows of 4.
  variables = jax.jit(lambda k, x: block.init(k, x, train=False))(jax.random.PRNGKey(1), x)
  out, state = jax.jit(lambda v, x: block.apply(v, x, train=False,
                                                capture_intermediates=True))(variables, x)
  vertical = state["intermediates"]["vertical"]["__call__"][0]
  vertical = np.asarray(spatial.sequences_to_columns(vertical, 2))
  return x, np.asarray(spatial.split_patches(x, 2, 1)), vertical, np.asarray(out), \
      variables["params"]


def _runner(kind, params):
  apply = jax.jit(lambda p, s: CELLS[kind].apply({"params": p}, s[:, None],
                                                 method="over_sequence")[0][:, 0])
  return lambda seq: np.asarray(apply(params, seq))


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_vertical_sweep_of_a_column_equals_the_cell_on_that_column(kind):
  _, grid, vertical, out, params = _sweeps(kind)
  assert vertical.shape == (2, 3, 4, 8) and out.shape == (2, 3, 4, 8)
  forward = _runner(kind, params["vertical"]["forward"])
  backward = _runner(kind, params["vertical"]["backward"])
  for b in range(2):
    for j in range(4):
      column = grid[b, :, j]  # [3 patch rows, 2 * 1 * 3 features]
      np.testing.assert_allclose(vertical[b, :, j, :4], forward(column), atol=1e-5)
      np.testing.assert_allclose(vertical[b, :, j, 4:], backward(column[::-1])[::-1],
                                 atol=1e-5)


@pytest.mark.parametrize("kind", ["indrnn", "lstm"])
def test_block_output_second_half_is_forward_pass_of_reversed_rows(kind):
  _, _, vertical, out, params = _sweeps(kind)
  forward = _runner(kind, params["horizontal"]["forward"])
  backward = _runner(kind, params["horizontal"]["backward"])
  for b in range(2):
    for i in range(3):
      row = vertical[b, i]  # [4 patches, 2 * 4 features]
      np.testing.assert_allclose(out[b, i, :, :4], forward(row), atol=1e-5)
      np.testing.assert_allclose(out[b, i, :, 4:], backward(row[::-1])[::-1], atol=1e-5)


# The classifier.


def tiny_renet_model(c):
  m = c.model
  m.conv_channels, m.hidden_size = (4,), 4
  return c


def test_classifier_output_shape_and_builder():
  c = load_config("renet_mnist", "indrnn")
  c.model.update(conv_channels=(4,), hidden_size=6, patch_sizes=((2, 2), 1, (1, 7)),
                 num_layers=3)
  model = models.build_model(c.model, seq_len=28, num_outputs=10, readout="last")
  assert isinstance(model, spatial.ReNetClassifier)
  assert model.patches == ((2, 2), (1, 1), (1, 7))
  x = _x((3, 28, 28, 1))
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.PRNGKey(0), x)
  (logits, states), _ = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=["batch_stats"]))(variables, x)
  assert logits.shape == (3, 10) and states == ()
  assert variables["params"]["renet_2"]["horizontal"]["forward"]["u"].shape == (6,)
  # 28 -> 14 (stem) -> 7 x 7 (2 x 2 patches) -> 7 x 7 -> 7 x 1: its rows have one step.
  c.model.num_layers = 2
  with pytest.raises(ValueError, match="num_layers"):
    models.build_model(c.model, seq_len=28, num_outputs=10, readout="last")
  c.model.arch = "transformer"
  with pytest.raises(ValueError, match="config.model.arch"):
    models.build_model(c.model, seq_len=28, num_outputs=10, readout="last")


@pytest.mark.parametrize("variant", ["indrnn", "irnn", "lstm", "gru", "indrnn_paper",
                                     "gru_paper"])
def test_renet_config_variants(variant):
  c = load_config("renet_mnist", variant)
  configlib.validate(c)
  assert (c.model.arch, c.model.cell, c.data.view) == ("renet", variant.split("_")[0], "image")
  assert (c.train.num_steps > 10_000) == variant.endswith("_paper")
  assert c.model.num_layers == len(c.model.patch_sizes)
  model = models.build_model(c.model, seq_len=28, num_outputs=10, readout="last")
  assert len(model.cells) == 2 and model.cells[0].name_in_configs == c.model.cell


# Image data.


def test_mnist_image_view_and_padding(mnist_dir):
  pixels = build_dataset(data_cfg(mnist_dir), 0, "").train_batch(2)["inputs"]
  image = build_dataset(data_cfg(mnist_dir, "image", seq_len=28), 0, "")
  x = image.train_batch(2)["inputs"]
  assert x.shape == (8, 28, 28, 1) and x.dtype == np.float32
  np.testing.assert_array_equal(x.reshape(8, 784, 1), pixels)
  padded = build_dataset(data_cfg(mnist_dir, "image", pad_to=33), 0, "")
  y = padded.train_batch(2)["inputs"]
  assert y.shape == (8, 33, 33, 1) and padded.seq_len == 33  # T: the padded height.
  np.testing.assert_array_equal(y[:, 2:30, 2:30], x)
  assert not y[:, :2].any() and not y[:, 30:].any() and not y[:, :, 30:].any()
  with pytest.raises(ValueError, match="config.data.pad_to"):
    build_dataset(data_cfg(mnist_dir, "image", seq_len=28, pad_to=20), 0, "")
  with pytest.raises(ValueError, match="config.data.seq_len=28 does not match"):
    build_dataset(data_cfg(mnist_dir, "image", seq_len=28, pad_to=33), 0, "")


def test_channel_stats():
  x = np.zeros((4, 2, 2, 2), np.uint8)
  x[:2, ..., 0] = 255  # Channel 0: half 1, half 0; channel 1 always 0.
  mean, std = images.channel_stats(x, "standardize")
  np.testing.assert_allclose(mean, [0.5, 0.0])
  np.testing.assert_allclose(std, [0.5, images.MIN_STD])


def test_tfds_image_data_set_under_mock_data():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  c = load_config("renet_tfds", "cifar10")
  configlib.validate(c)
  c.data.update(validation_size=4, batch_size=4, eval_batch_size=3, pad_to=34)
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = build_dataset(c.data, 0, "")
  assert (ds.num_outputs, ds.num_train, ds.eval_splits) == (10, 6, ("valid", "test"))
  batch = ds.train_batch(0)
  assert batch["inputs"].shape == (4, 34, 34, 3) and batch["targets"].shape == (4,)
  assert [b["mask"].sum() for b in ds.eval_batches("test")] == [3, 3, 3, 1]
  np.testing.assert_array_equal(batch["inputs"][:, :, 0], 0.0)  # A padded column.
  c.data.tfds_name = ""
  with pytest.raises(ValueError, match="config.data.tfds_name"):
    build_dataset(c.data, 0, "")


# Training end to end, and the predictions file.


def tiny_mnist_run(config, mnist_dir, workdir, steps=4):
  c = config
  c.data.update(dir=mnist_dir, source="files", validation_size=10, batch_size=8,
                eval_batch_size=5, eval_examples=0)  # 12 test images: 2 padded rows.
  c.optimizer.learning_rate = 1e-2  # Distinct logits: argmax ties are unlikely.
  c.train.update(num_steps=steps, log_every=2, eval_every=steps, checkpoint_every=steps)
  return train.train_and_evaluate(c, workdir)


@pytest.fixture(scope="module")
def renet_run(mnist_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("renet"))
  c = tiny_renet_model(load_config("renet_mnist", "indrnn"))
  c.data.pad_to = 32
  c.model.update(patch_sizes=((2, 2), 1))  # 32 -> 16 -> 8 -> 8.
  return workdir, tiny_mnist_run(c, mnist_dir, workdir)


@pytest.fixture(scope="module")
def sequence_run(mnist_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("rows"))
  c = load_config("row_mnist", "indrnn")
  c.model.update(hidden_size=8, num_layers=2)
  return workdir, tiny_mnist_run(c, mnist_dir, workdir)


def test_tiny_renet_trains_end_to_end(renet_run):
  workdir, metrics = renet_run
  assert metrics["step"] == 4 and metrics["skipped_updates"] == 0
  for key in ("train/loss", "valid/accuracy", "test/loss"):
    assert np.isfinite(metrics[key])
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "4"


@pytest.mark.parametrize("run", ["renet_run", "sequence_run"])
def test_predictions_match_the_evaluation(run, request, tmp_path):
  workdir, metrics = request.getfixturevalue(run)
  path = str(tmp_path / "test.csv")
  result = predictions.write_predictions(workdir, "test", path)
  accuracy = metrics["test/accuracy"]  # Of the same (last) checkpoint.
  assert result == {"step": 4, "examples": N_TEST,
                    "accuracy": pytest.approx(accuracy, abs=1e-9)}
  assert predictions.file_accuracy(path) == pytest.approx(accuracy, abs=1e-9)
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["example"]) for r in rows] == list(range(N_TEST))  # No padded rows.
  assert [int(r["label"]) for r in rows] == list(np.arange(N_TEST) % 10)
  probs = np.array([[float(r[f"p_{k}"]) for k in range(10)] for r in rows])
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
  np.testing.assert_array_equal([int(r["predicted"]) for r in rows], probs.argmax(1))
  with pytest.raises(ValueError, match="split"):
    predictions.write_predictions(workdir, "train", str(tmp_path / "x.csv"))
