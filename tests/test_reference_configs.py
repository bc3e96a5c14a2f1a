"""The configs that copy reference implementations: their settings, and one training step each."""

import numpy as np
import pytest

from configs import chainer_irnn, minpy_mnist, neoml_irnn
from irnn_jax import configlib, train
from tests.conftest import N_TRAIN

MODULES = {"minpy_mnist": minpy_mnist, "neoml_irnn": neoml_irnn, "chainer_irnn": chainer_irnn}
ALL = [(name, v) for name, module in MODULES.items() for v in module.VARIANTS]


@pytest.mark.parametrize("name, variant", ALL)
def test_reference_config_trains_one_step(mnist_dir, tmp_path, name, variant):
  c = MODULES[name].get_config(variant)
  configlib.validate(c)
  c.data.dir = mnist_dir
  c.data.train_examples = min(c.data.train_examples, N_TRAIN)
  c.data.validation_size = min(c.data.validation_size, 10)
  c.data.batch_size = c.data.eval_batch_size = 8
  c.data.eval_examples = 0
  c.model.hidden_size = 16
  c.model.num_layers = min(c.model.num_layers, 2)
  c.train.num_epochs, c.train.num_steps = 0, 1
  metrics = train.train_and_evaluate(c, str(tmp_path))
  assert metrics["step"] == 1 and np.isfinite(metrics["test/loss"])


def test_minpy_reference_setting():
  c = minpy_mnist.get_config()
  d, m, o = c.data, c.model, c.optimizer
  assert (d.view, d.patch_size, d.train_examples, d.eval_examples) == ("patches", 7, 5000, 1000)
  assert (d.validation_size, d.batch_size, d.normalize) == (0, 50, "standardize")
  assert (m.cell, m.hidden_size, m.cells.rnn.recurrent_init) == ("rnn", 128, "identity")
  assert m.input_std == pytest.approx(np.sqrt(6 / (7 + 128)))
  assert (o.name, o.learning_rate, o.rmsprop_decay, o.rmsprop_eps_in_sqrt) == (
      "rmsprop", 2e-4, 0.99, False)
  assert c.train.num_epochs == 100 and c.train.eval_every == 5000 // 50


def test_neoml_reference_setting():
  c = neoml_irnn.get_config()
  d, m, o = c.data, c.model, c.optimizer
  assert (d.view, d.normalize, d.batch_size, d.validation_size) == ("pixels", "inverted", 40, 0)
  assert (m.cell, m.hidden_size, m.input_std, m.cells.irnn.identity_scale) == (
      "irnn", 100, 1e-3, 1.0)
  assert (o.name, o.learning_rate, o.clip_global_norm, o.weight_decay) == ("adam", 1e-6, 1.0, 0)
  assert c.train.num_epochs == 200 and c.train.eval_every == 60000 // 40


def test_chainer_reference_setting():
  c = chainer_irnn.get_config()
  assert c.data.pixel_tokens and c.data.batch_size == 16
  assert (c.model.cell, c.model.hidden_size) == ("irnn", 100)
  o = c.optimizer
  assert (o.name, o.learning_rate, o.clip_global_norm) == ("sgd", 1e-8, 1.0)


@pytest.mark.parametrize("module", MODULES.values())
def test_unknown_reference_variant_is_named(module):
  with pytest.raises(ValueError, match="unknown .* variant 'nope'"):
    module.get_config("nope")
