"""The metrics of a saved run on one split, at its latest or best checkpoint.

`evaluate_run(workdir, split, checkpoint)` reloads the run (`run.load_run`)
and evaluates it as training does (`train.evaluate`: the same metrics, states
carried through a language model's stream, each batch's own batch-norm
statistics where config.train.eval_batch_stats is set); `write_evaluation` saves the result
as workdir/evaluation_<checkpoint>_<split>.json:

  {"workdir", "checkpoint": "best", "step": 1500, "split": "test",
   "examples": 1000 (tokens for a language model), "metrics": {"test/loss": ..., ...}}
"""

import json
import os

import jax
import numpy as np
from jax.sharding import Mesh

from irnn_jax import configlib, data, parallel, run, tasks, train


def load(workdir: str, checkpoint: str = "latest", max_examples: int = 0,
         data_dir: str = "") -> run.Run:
  """`run.load_run` with the data of a whole split: max_examples=0 is all of
  it (for a generated data set, the adding problem, the run's own
  config.data.eval_examples), N the first N; data_dir, if set, replaces
  config.data.dir (the run's may be relative to another directory)."""
  if max_examples < 0:
    raise ValueError(f"max_examples must be >= 0, got {max_examples}")
  overrides = {"dir": data_dir} if data_dir else {}
  config_path = os.path.join(workdir, "config.json")
  generated = os.path.exists(config_path) and (
      configlib.load_saved(config_path).data.name in data.GENERATED)
  if max_examples or not generated:  # A generated set: as many examples as the run evaluated.
    overrides["eval_examples"] = max_examples
  return run.load_run(workdir, checkpoint=checkpoint, data_overrides=overrides)


def check_split(loaded: run.Run, split: str):
  splits = tuple(loaded.dataset.eval_splits)
  if split not in splits:
    raise ValueError(f"unknown split {split!r}; the data set of {loaded.workdir} has {splits}")


def evaluate_run(workdir: str, split: str = "test", checkpoint: str = "latest",
                 max_examples: int = 0, data_dir: str = "") -> dict:
  """The metrics of `split` at the run's `checkpoint` (latest | best); see
  `load` for max_examples and data_dir."""
  loaded = load(workdir, checkpoint, max_examples, data_dir)
  check_split(loaded, split)
  mesh = Mesh(np.array(jax.devices()[:1]), (parallel.DATA_AXIS,))
  eval_step = train.make_eval_step(loaded.model, loaded.spec.task)
  own_stats = (train.make_batch_stats_step(loaded.model)
               if loaded.config.train.eval_batch_stats else None)
  sums = train.evaluation_sums(eval_step, loaded.state, loaded.dataset, split, mesh,
                               own_stats)
  metrics = tasks.mean_metrics(loaded.spec.task, sums)
  return {"workdir": os.path.abspath(workdir), "checkpoint": checkpoint,
          "step": int(loaded.state.step), "split": split, "examples": int(sums["count"]),
          "metrics": {f"{split}/{k}": v for k, v in sorted(metrics.items())}}


def output_path(workdir: str, checkpoint: str, split: str) -> str:
  return os.path.join(workdir, f"evaluation_{checkpoint}_{split}.json")


def write_evaluation(result: dict, path: str = "") -> str:
  """Write `result` of `evaluate_run` as JSON (default `output_path`); the path."""
  path = path or output_path(result["workdir"], result["checkpoint"], result["split"])
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return path
