"""Every config variant builds and trains; bad values fail at start naming the field."""

import json
import re

import pytest

from irnn_jax import configlib, train
from configs import adding
from configs import sequences as sequences_config
from tests.conftest import tiny_config


@pytest.mark.parametrize("variant", adding.VARIANTS + ("indrnn_paper", adding.LONG))
def test_every_adding_variant_trains_one_step(variant, tmp_path):
  cfg = tiny_config(variant, num_steps=1, time_budget_minutes=0.0)
  cfg.data.seq_len = 6
  metrics = train.train_and_evaluate(cfg, str(tmp_path))
  assert metrics["step"] == 1 and metrics["test/mse"] > 0


def test_an_unknown_variant_lists_every_variant_the_file_accepts():
  with pytest.raises(ValueError, match="unknown adding variant") as error:
    adding.get_config("transformer")
  for variant in adding.VARIANTS + (adding.LONG,):
    assert repr(variant) in str(error.value)


@pytest.mark.parametrize("field,value,message", [
    ("model.cell", "transformer", "config.model.cell"),
    ("optimizer.name", "lion", "config.optimizer.name"),
    ("model.hidden_size", 0, "config.model.hidden_size must be positive"),
    ("model.num_layers", -1, "config.model.num_layers must be positive"),
    ("data.seq_len", 0, "config.data.seq_len must be positive"),
    ("data.batch_size", 0, "config.data.batch_size must be positive"),
    ("train.num_steps", 0, "config.train.num_steps must be positive"),
    ("model.norm", "layer", "config.model.norm"),
    ("model.dropout", 1.0, "config.model.dropout"),
    ("schedule.name", "cosine", "config.schedule.name"),
    ("data.name", "imagenet", "config.data.name"),
])
def test_bad_config_fails_at_start_naming_the_field(field, value, message, tmp_path):
  cfg = tiny_config()
  section, name = field.split(".")
  cfg[section][name] = value
  with pytest.raises(ValueError, match=message):
    train.train_and_evaluate(cfg, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def test_saved_config_from_older_code_gets_new_defaults(tmp_path):
  """config.json written before a field existed still loads, with the default."""
  saved = json.loads(configlib.base_config().to_json_best_effort())
  del saved["model"]["remat"]
  saved["model"]["hidden_size"] = 7
  path = tmp_path / "config.json"
  path.write_text(json.dumps(saved))
  config = configlib.load_saved(str(path))
  assert config.model.hidden_size == 7
  assert config.model.remat is False


@pytest.mark.parametrize("cell", sequences_config.CELLS)
def test_every_sequences_variant_is_a_valid_config(cell):
  config = sequences_config.get_config(f"cell={cell},hidden=16,epochs=2")
  configlib.validate(config)
  assert config.model.cell == cell and config.model.hidden_size == 16
  assert config.train.num_epochs == 2.0
  assert config.optimizer.learning_rate == (2e-3 if cell == "indrnn" else 1e-3)


@pytest.mark.parametrize("arg, message", [("cell=mgu", "unknown cell='mgu'"),
                                          ("size=3", "bad argument 'size=3'"),
                                          ("lstm", "bad argument 'lstm'")])
def test_bad_sequences_arguments_are_named(arg, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    sequences_config.get_config(arg)
