"""The best checkpoint of a run by a validation metric.

Beside the latest checkpoints, workdir/checkpoints_best/ holds one checkpoint:
the train state at the evaluation where `config.train.select_metric` was best
so far (strictly better than every earlier one: the earliest step of a tie).
Its record, the "best" entry of metrics.json, is saved inside that checkpoint,
so the two are written together and a resumed run knows the best value so far:

  {"step": 1500, "metric": "valid/mse", "mode": "min", "value": 0.0031,
   "metrics": {"valid/loss": ..., "valid/mse": ..., "test/loss": ..., "test/mse": ...}}

`metrics` holds every metric of that evaluation. After a resume, evaluations at
steps up to the saved best one's are not offered again: a resume trains them
again exactly.
"""

import math
import os

from absl import logging
import jax

from irnn_jax import tasks
from irnn_jax.checkpoints import Checkpointer

DIRECTORY = "checkpoints_best"
_FIELDS = ("step", "metric", "mode", "value", "metrics")


def resolve_mode(metric: str, mode: str = "auto") -> str:
  """"max" for an accuracy, "min" for the rest (loss, mse, bpc, perplexity)."""
  if mode != "auto":
    return mode
  return "max" if "accuracy" in metric.split("/")[-1] else "min"


def improves(value: float, best: float | None, mode: str) -> bool:
  """Whether `value` is finite and strictly better than `best` (None: none yet)."""
  if not math.isfinite(value):
    return False
  return best is None or (value < best if mode == "min" else value > best)


def evaluated_metrics(model, variables, batch: dict, task: str, splits) -> list[str]:
  """Every "split/name" an evaluation reports, from a trace of the model on
  `batch` (shapes only, nothing runs)."""

  def sums(v, b):
    outputs = model.apply(v, b["inputs"], seq_lengths=b.get("lengths"), train=False)[0]
    return tasks.batch_metrics(task, outputs, b)

  names = [k for k in jax.eval_shape(sums, variables, batch) if k != "count"]
  names += list(tasks.derived_metrics(task, 1.0))
  return [f"{split}/{name}" for split in splits for name in names]


def check_metric(train_cfg, built) -> None:
  """ValueError naming config.train.select_metric unless the data set of
  `built` (a run.Run) evaluates it; nothing to check when it is ""."""
  metric = train_cfg.select_metric
  if not metric:
    return
  dataset = built.dataset
  split = metric.split("/", 1)[0]
  if split not in dataset.eval_splits:
    raise ValueError(
        f"config.train.select_metric={metric!r}: this data set evaluates the splits "
        f"{tuple(dataset.eval_splits)}, not {split!r}; select on another (e.g. "
        f"{dataset.eval_splits[0]}/loss) or set it to \"\" to keep no best checkpoint")
  known = evaluated_metrics(built.model, built.variables, dataset.train_batch(0), dataset.task,
                            dataset.eval_splits)
  if metric not in known:
    raise ValueError(f"config.train.select_metric={metric!r} is not an evaluation "
                     f"metric of this {dataset.task} task; choose from {known}")


def _valid_record(record: dict) -> bool:
  return all(k in record for k in _FIELDS) and isinstance(record["metrics"], dict)


def read_record(checkpointer: Checkpointer) -> dict | None:
  """The record of the newest checkpoint in a best-checkpoint directory, or
  None where there is none or it cannot be read (a warning then)."""
  steps = checkpointer.all_steps()
  if not steps:
    return None
  try:
    record = checkpointer.metadata(steps[-1])
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("The record of the best checkpoint %d in %s cannot be read (%s)",
                    steps[-1], checkpointer.directory, e)
    return None
  if not _valid_record(record):
    logging.warning("The best checkpoint %d in %s has no record", steps[-1],
                    checkpointer.directory)
    return None
  return record


class BestCheckpoint:
  """workdir/checkpoints_best/ while a run trains: `offer` each evaluation;
  `record` is the best so far (None before the first finite one)."""

  def __init__(self, workdir: str, metric: str, mode: str = "auto"):
    self.metric, self.mode = metric, resolve_mode(metric, mode)
    self._checkpointer = Checkpointer(os.path.join(workdir, DIRECTORY), 1, 1)
    steps = self._checkpointer.all_steps()
    self._last_step = steps[-1] if steps else -1  # Saves go to later steps only.
    self.record = read_record(self._checkpointer)
    if self.record and (self.record["metric"], self.record["mode"]) != (metric, self.mode):
      logging.warning("The best checkpoint (step %d) was selected by %s (%s); now by %s "
                      "(%s): the best is tracked again from here", self.record["step"],
                      self.record["metric"], self.record["mode"], metric, self.mode)
      self.record = None
    elif self.record:
      logging.info("Best %s so far: %.6g at step %d", metric, self.record["value"],
                   self.record["step"])

  def offer(self, step: int, state, results: dict) -> bool:
    """Save `state` if `results[metric]` (one evaluation's "split/name"
    metrics at `step`) improves on the best; whether it was saved."""
    if step <= self._last_step:
      return False
    if self.metric not in results:
      raise ValueError(f"config.train.select_metric={self.metric!r} is not one of the "
                       f"evaluation metrics {sorted(results)}")
    value = float(results[self.metric])
    if not improves(value, self.record["value"] if self.record else None, self.mode):
      return False
    record = {"step": int(step), "metric": self.metric, "mode": self.mode, "value": value,
              "metrics": {k: float(v) for k, v in sorted(results.items())}}
    if not self._checkpointer.save(step, state, force=True, metadata=record):
      return False
    self.record, self._last_step = record, step
    logging.info("New best %s: %.6g at step %d", self.metric, value, step)
    return True

  def restore(self, like):
    """The best state so far, in the structure and shardings of `like`; None
    before the first."""
    if self.record is None:
      return None
    self._checkpointer.wait()
    return self._checkpointer.restore(like, self.record["step"])

  def close(self):
    self._checkpointer.close()
