"""A run: the data set, model, optimizer and train state a config describes.

`build(config, workdir)` makes them for training; `load_run(workdir)` makes
them again for a finished or running run and restores its latest checkpoint
(or a given step, or the best one); `Run.predict(inputs)` runs its model.
Training, evaluation, prediction, sampling and the benchmarks all build models
and states through the functions here.
"""

import dataclasses
import json
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from irnn_jax import best_checkpoint, configlib, data, models, optim
from irnn_jax.checkpoints import Checkpointer

SPEC_FILE = "data_spec.json"
CHECKPOINTS = {"latest": "checkpoints", "best": best_checkpoint.DIRECTORY}  # -> directory.


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What the model and the train state need to know of a data set."""
  task: str  # regression | classification | language_model
  num_outputs: int
  readout: str  # last | all
  vocab_size: int  # > 0: inputs are token ids through an embedding.
  seq_len: int  # T: time steps per training sequence.
  input_shape: tuple[int, ...]  # One example's inputs, e.g. (T, D) or (H, W, C).
  input_dtype: str
  carries_state: bool  # Final states of one batch start the next (language models).

  @classmethod
  def of(cls, dataset, inputs: np.ndarray) -> "DataSpec":
    """The spec of `dataset`, whose training batches hold `inputs`."""
    return cls(task=dataset.task, num_outputs=dataset.num_outputs, readout=dataset.readout,
               vocab_size=dataset.vocab_size, seq_len=dataset.seq_len,
               input_shape=tuple(inputs.shape[1:]), input_dtype=str(inputs.dtype),
               carries_state=getattr(dataset, "carries_state", False))

  def zero_inputs(self, batch_size: int) -> np.ndarray:
    return np.zeros((batch_size, *self.input_shape), self.input_dtype)


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  lr_scale: jax.Array  # Reduce-on-plateau factor on the scheduled rate.
  plateau_best: jax.Array
  plateau_count: jax.Array
  bad_streak: jax.Array  # Non-finite updates in a row, all skipped.
  skipped: jax.Array  # Non-finite updates skipped in total.
  elapsed: jax.Array  # Seconds of training before the last checkpoint.
  carry: Any  # Final states of every layer after the last batch; {} unless carried.


def build_model(config: ml_collections.ConfigDict, spec: DataSpec) -> nn.Module:
  return models.build_model(config.model, seq_len=spec.seq_len, num_outputs=spec.num_outputs,
                            readout=spec.readout, vocab_size=spec.vocab_size)


def zero_states(model, variables, inputs):
  """Zeros shaped like the final states of every layer after `inputs`."""
  shapes = jax.eval_shape(lambda v, x: model.apply(v, x, train=False)[1],
                          variables, inputs)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def initial_state(config, model, tx, sample_inputs, carry_state: bool = False) -> TrainState:
  """Step 0: parameters from (config.seed, 0); `sample_inputs` fixes the shapes
  (its batch size that of the carried states)."""
  init_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(init_key, sample_inputs)
  params = variables["params"]
  carry = zero_states(model, variables, sample_inputs) if carry_state else {}
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
      lr_scale=jnp.ones((), jnp.float32), plateau_best=jnp.full((), jnp.inf),
      plateau_count=jnp.zeros((), jnp.int32), bad_streak=jnp.zeros((), jnp.int32),
      skipped=jnp.zeros((), jnp.int32), elapsed=jnp.zeros((), jnp.float32),
      carry=carry)


@dataclasses.dataclass
class Run:
  """Everything of one run; `dataset` is None where it was not asked for."""
  config: ml_collections.ConfigDict
  workdir: str
  spec: DataSpec
  dataset: Any
  model: nn.Module
  optimizer: optax.GradientTransformation
  state: TrainState  # At step 0 from `build`, restored by `load_run`.
  _apply: Any = dataclasses.field(default=None, repr=False, compare=False)

  @property
  def variables(self) -> dict:
    """{"params", "batch_stats"} for model.apply."""
    return variables_of(self.state.params, self.state.batch_stats)

  def predict(self, inputs, seq_lengths=None) -> np.ndarray:
    """The model on batch-major `inputs` [B, ...] (numpy or jax) in eval mode,
    from zero states: class probabilities [B, K] for classification, [B, T, V]
    for a language model; the outputs [B, K] for regression.
    `seq_lengths[B]`: each sequence's length where the batch is padded.
    `inputs` are the model's, as the data set's batches hold them; for one's
    own sequences (arrays, ts) `dataset.prepare_inputs(x, lengths)` makes them
    from raw ones with the run's saved statistics."""
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 1 + len(self.spec.input_shape):
      raise ValueError(f"inputs of shape {inputs.shape}: expected batch-major [B, "
                       f"{', '.join(map(str, self.spec.input_shape))}]")
    if self._apply is None:
      probabilities = self.spec.task != "regression"

      def apply(variables, x, lengths):
        outputs = self.model.apply(variables, x, seq_lengths=lengths, train=False)[0]
        outputs = outputs.astype(jnp.float32)
        return jax.nn.softmax(outputs, axis=-1) if probabilities else outputs

      self._apply = jax.jit(apply)
    lengths = None if seq_lengths is None else jnp.asarray(seq_lengths, jnp.int32)
    return np.asarray(self._apply(self.variables, inputs, lengths))


def variables_of(params, batch_stats) -> dict:
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def build(config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Validate `config`, then make its data set, model, optimizer and step-0
  state; `workdir` is where the data set keeps what a resume needs."""
  configlib.validate(config)
  dataset = data.build_dataset(config.data, config.seed, workdir)
  inputs = dataset.train_batch(0)["inputs"]
  spec = DataSpec.of(dataset, inputs)
  model = build_model(config, spec)
  tx = optim.make_optimizer(config.optimizer)
  state = initial_state(config, model, tx, inputs, spec.carries_state)
  return Run(config, workdir, spec, dataset, model, tx, state)


def _saved_spec(workdir: str):
  path = os.path.join(workdir, SPEC_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  return DataSpec(**{**saved, "input_shape": tuple(saved["input_shape"])})


def load_run(workdir: str, step: int | None = None, checkpoint: str = "latest", *,
             with_data: bool = True, data_overrides: dict | None = None) -> Run:
  """The run in `workdir` at its latest checkpoint (or `step`), or with
  checkpoint="best" at the one kept in checkpoints_best/ (`best_checkpoint`).

  with_data=False skips the data set where the run saved its DataSpec
  (sampling needs no corpus); `data_overrides` replace fields of the saved
  config.data first, e.g. {"dir": ...} where the run's path was relative to
  another directory, or {"eval_examples": 0} for whole splits.
  """
  if checkpoint not in CHECKPOINTS:
    raise ValueError(f"checkpoint={checkpoint!r}: choose from {tuple(CHECKPOINTS)}")
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{os.path.abspath(path)} not found: is {workdir!r} a "
                            "training workdir?")
  config = configlib.load_saved(path)
  config.data.update(data_overrides or {})
  spec = None if with_data else _saved_spec(workdir)
  dataset = None
  if spec is None:
    dataset = data.build_dataset(config.data, config.seed, workdir)
    spec = DataSpec.of(dataset, dataset.train_batch(0)["inputs"])
  model = build_model(config, spec)
  tx = optim.make_optimizer(config.optimizer)
  like = initial_state(config, model, tx, spec.zero_inputs(config.data.batch_size),
                       spec.carries_state)
  directory = os.path.join(workdir, CHECKPOINTS[checkpoint])
  if checkpoint == "best" and not os.path.isdir(directory):
    raise FileNotFoundError(
        f"no best checkpoint in {os.path.abspath(directory)}: the run kept none "
        f"(config.train.select_metric={config.train.select_metric!r}), or was trained "
        "before best checkpoints were kept")
  checkpointer = Checkpointer(directory, config.train.checkpoint_every,
                              config.train.keep_checkpoints)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"no checkpoint in {os.path.abspath(directory)}"
                              + (" yet: the run has not evaluated" if checkpoint == "best"
                                 else ""))
    state = checkpointer.restore(like, step)
  finally:
    checkpointer.close()
  return Run(config, workdir, spec, dataset, model, tx, state)
