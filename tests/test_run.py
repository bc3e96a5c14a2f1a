"""Building a run from a config, and reloading a finished one."""

import dataclasses
import os

import jax
import numpy as np
import pytest

from irnn_jax import run, train
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  cfg = tiny_config("indrnn", num_steps=10, checkpoint_every=5)
  cfg.model.norm = "sequence"
  workdir = str(tmp_path_factory.mktemp("run"))
  return cfg, workdir, train.train_and_evaluate(cfg, workdir)


def test_build_makes_the_step_zero_state_of_the_config(tmp_path):
  cfg = tiny_config("irnn")
  built = run.build(cfg, str(tmp_path))
  assert int(built.state.step) == 0 and built.spec.task == "regression"
  assert built.spec.input_shape == (cfg.data.seq_len, 2)
  w_h = built.state.params["stack"]["layer_0"]["forward"]["recurrent_kernel"]
  np.testing.assert_array_equal(w_h, np.eye(cfg.model.hidden_size))  # IRNN: the identity.
  again = run.build(cfg, str(tmp_path))
  jax.tree.map(np.testing.assert_array_equal, built.state.params, again.state.params)


def test_load_run_restores_the_last_state_and_reproduces_the_evaluation(finished):
  cfg, workdir, metrics = finished
  loaded = run.load_run(workdir)
  assert int(loaded.state.step) == 10
  assert loaded.config.model.to_dict() == cfg.model.to_dict()
  eval_step = train.make_eval_step(loaded.model, loaded.spec.task)
  totals = None
  for batch in loaded.dataset.eval_batches("test"):
    sums, _ = eval_step(loaded.state.params, loaded.state.batch_stats, batch, None)
    totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
  assert float(totals["mse"] / totals["count"]) == pytest.approx(metrics["test/mse"], rel=1e-6)


def test_load_run_without_data_uses_the_saved_spec(finished):
  _, workdir, _ = finished
  loaded = run.load_run(workdir, with_data=False)
  assert loaded.dataset is None and loaded.spec == run.load_run(workdir).spec
  earlier = run.load_run(workdir, step=5, with_data=False)
  assert int(earlier.state.step) == 5


def test_load_run_names_what_is_missing(tmp_path, finished):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "config.json")):
    run.load_run(str(tmp_path))
  _, workdir, _ = finished
  with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 7 in .*; saved steps: \[5, 10\]"):
    run.load_run(workdir, step=7)
  assert os.path.exists(os.path.join(workdir, run.SPEC_FILE))


def test_predict_equals_a_direct_model_apply_in_eval_mode(finished):
  _, workdir, _ = finished
  loaded = run.load_run(workdir)
  inputs = loaded.dataset.train_batch(3)["inputs"]
  outputs, _ = loaded.model.apply(loaded.variables, inputs, seq_lengths=None, train=False)
  np.testing.assert_allclose(loaded.predict(inputs), np.asarray(outputs), rtol=1e-6)
  assert loaded.predict(list(inputs[:2])).shape == (2, 1)  # Any array-like, batch-major.
  with pytest.raises(ValueError, match=r"expected batch-major \[B, 12, 2\]"):
    loaded.predict(inputs[0])


def test_predict_gives_class_probabilities(tmp_path):
  cfg = tiny_config("indrnn")
  built = run.build(cfg, str(tmp_path))
  spec = dataclasses.replace(built.spec, task="classification", num_outputs=3)
  model = run.build_model(cfg, spec)
  inputs = built.dataset.train_batch(0)["inputs"]
  state = run.initial_state(cfg, model, built.optimizer, inputs)
  built = run.Run(cfg, built.workdir, spec, built.dataset, model, built.optimizer, state)
  logits, _ = built.model.apply(built.variables, inputs, train=False)
  np.testing.assert_allclose(built.predict(inputs), jax.nn.softmax(logits, -1), rtol=1e-5)


def test_load_run_names_a_missing_checkpoint_kind(finished):
  _, workdir, _ = finished
  with pytest.raises(ValueError, match="checkpoint='newest'"):
    run.load_run(workdir, checkpoint="newest")
  assert int(run.load_run(workdir, checkpoint="best", with_data=False).state.step) == 10
