"""What several test modules share: tiny configs and tiny MNIST files.

Nothing here reads ../shared: the data are written on the fly.
"""

import gzip
import os
import struct
import sys

import numpy as np
import pytest

# Tests import irnn_jax and configs from the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import adding  # noqa: E402
from configs.common import mnist as mnist_configs  # noqa: E402
from irnn_jax import configlib  # noqa: E402
from irnn_jax.cells import IndRNNCell  # noqa: E402


def tiny_config(variant="indrnn", **train_fields):
  """configs/adding.py's variant at T=12, 16 units, 20 steps."""
  cfg = adding.get_config(variant)
  cfg.data.seq_len = 12
  cfg.data.batch_size = 16
  cfg.data.eval_examples = 64
  cfg.data.eval_batch_size = 32
  cfg.model.hidden_size = 16
  cfg.train.update(num_steps=20, log_every=5, eval_every=10, checkpoint_every=10)
  cfg.train.update(train_fields)
  return cfg


N_TRAIN, N_TEST = 50, 12


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
  """IDX file bytes, written field by field from the spec."""
  header = bytes([0, 0, code, array.ndim])
  for size in array.shape:
    header += struct.pack(">I", size)
  big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                0x0E: ">f8"}[code]
  return header + array.astype(big_endian).tobytes()


def write(path: str, payload: bytes):
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(payload)


def fake_images(n: int, offset: int) -> np.ndarray:
  """uint8 [n, 28, 28]: example i carries its id (offset + i) in pixels 0 and 1
  (low and high byte); pixel 2 is 255 and the others a fixed pattern."""
  rng = np.random.default_rng(offset)
  images = rng.integers(0, 256, (n, 784), dtype=np.uint8)
  ids = np.arange(offset, offset + n)
  images[:, 0], images[:, 1], images[:, 2] = ids % 256, ids // 256, 255
  return images.reshape(n, 28, 28)


def write_mnist(directory: str, gz: bool = True, n_train: int = N_TRAIN,
                n_test: int = N_TEST) -> str:
  os.makedirs(directory, exist_ok=True)
  suffix = ".gz" if gz else ""
  for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 1000)):
    write(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"),
          idx_bytes(fake_images(n, offset)))
    write(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"),
          idx_bytes(np.arange(n) % 10))
  return directory


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
  return write_mnist(str(tmp_path_factory.mktemp("mnist")))


def data_cfg(directory, view="pixels", **overrides):
  c = mnist_configs.data_config(configlib.base_config(), view).data
  c.dir = directory
  c.source = "files"
  c.validation_size = 10
  c.batch_size = 8
  c.eval_batch_size = 5
  for key, value in overrides.items():
    c[key] = value
  return c


# Batch norm on features of a large mean against their spread: an IndRNN with
# h_t = z_t + b (identity, u = 0), 6 units, and the parameters below.
LARGE_MEAN, SMALL_STD = 10.0, 0.03
LARGE_MEAN_CELL = IndRNNCell(features=6, input_std=0.5, activation="identity",
                             u_init="constant", u_value=0.0)


def large_mean_params(params):
  """params with every input projection x W + b set to b = LARGE_MEAN and
  W = SMALL_STD * an orthogonal matrix: for independent unit-variance inputs,
  independent features of mean 10 and std 0.03."""
  if "input_projection" in params:
    kernel = np.asarray(params["input_projection"]["kernel"], np.float64)
    orthogonal = np.linalg.qr(kernel)[0].astype(np.float32)
    bias = np.full_like(params["input_projection"]["bias"], LARGE_MEAN)
    return {**params, "input_projection": {"kernel": SMALL_STD * orthogonal, "bias": bias}}
  return {k: large_mean_params(v) if isinstance(v, dict) else v for k, v in params.items()}
