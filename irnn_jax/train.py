"""The one training entry point: `train_and_evaluate(config, workdir)`.

Everything a run produces lives in `workdir`: the resolved config
(config.json), TensorBoard events, checkpoints/, the checkpoint of the best
evaluation (checkpoints_best/, see `best_checkpoint`), and the final metrics
with that best one's (metrics.json). Running again with the same workdir
resumes from the latest checkpoint and sees the same data order, because every
batch and every dropout mask is a function of (seed, step).

A data set with `carries_state` (language models) gets truncated BPTT: the
final recurrent states of one batch are the initial states of the next
(TrainState.carry, so a resume restores them), zero at each epoch start.
"""

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
from typing import Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from irnn_jax import best_checkpoint, checkpoints, layers, optim, parallel, run, tasks
from irnn_jax import workdir as workdir_lib
from irnn_jax.checkpoints import Checkpointer
from irnn_jax.run import TrainState, variables_of
from irnn_jax.summary import MetricWriter
from jax.sharding import PartitionSpec


_ROWS, _SAME = PartitionSpec(parallel.DATA_AXIS), PartitionSpec()


def _per_device(fn, mesh, in_specs, out_specs):
  """`fn` as a per-device map (`jax.shard_map`) over a `mesh` of several
  devices: arguments with spec _ROWS arrive as this device's rows of the batch,
  _SAME ones whole; `fn` itself sums what must cover all devices. Unchanged
  on one device."""
  if mesh is None or mesh.devices.size < 2:
    return fn
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)


def make_train_step(config, model, tx, task: str, carry_state: bool = False,
                    mesh=None) -> Callable:
  """(state, batch) -> (state, metrics): one optax update, then the model's
  parameter constraints (`model.constrain`); skipped when the loss or any
  gradient is not finite. With `carry_state` the batch starts
  from state.carry and leaves its final states there (no gradient flows
  between batches; a skipped update restarts them at zero). On a `mesh` of
  several devices the forward and backward pass run as a per-device map over
  the batch rows (`jax.shard_map`); see `parallel`."""
  dropout_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)

  def loss_and_grads(params, batch_stats, carry, batch, rng):
    """(gradients of the mean loss, metric sums, updated batch-norm statistics,
    final states). In the per-device map the sums, the statistics and the
    gradients cover all devices, and each device draws its own dropout masks."""
    if parallel.mapped_over_data():
      rng = jax.random.fold_in(rng, jax.lax.axis_index(parallel.DATA_AXIS))

    def loss_fn(params):
      (outputs, finals), updated = model.apply(
          variables_of(params, batch_stats), batch["inputs"],
          carry if carry_state else None, seq_lengths=batch.get("lengths"), train=True,
          rngs={"dropout": rng}, mutable=["batch_stats"])
      sums = tasks.batch_metrics(task, outputs, batch)
      count = parallel.sum_over_devices(jax.lax.stop_gradient(sums["count"]))
      return sums["loss"] / count, (sums, updated.get("batch_stats", {}), finals)

    (_, (sums, batch_stats, finals)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(params)
    return grads, parallel.sum_over_devices(sums), batch_stats, finals

  loss_and_grads = _per_device(loss_and_grads, mesh, (_SAME, _SAME, _ROWS, _ROWS, _SAME),
                               (_SAME, _SAME, _SAME, _ROWS))

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(dropout_key, state.step)
    grads, sums, batch_stats, finals = loss_and_grads(
        state.params, state.batch_stats, state.carry, batch, rng)
    loss = sums["loss"] / sums["count"]
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    lr = optim.base_learning_rate(config, state.step) * state.lr_scale
    opt_state = optim.set_learning_rate(state.opt_state, lr)
    updates, opt_state = tx.update(grads, opt_state, state.params)
    params = model.constrain(optax.apply_updates(state.params, updates))
    keep_new = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    bad_streak = jnp.where(finite, 0, state.bad_streak + 1)
    carry = state.carry
    if carry_state:
      carry = jax.tree.map(lambda f: jnp.where(finite, jax.lax.stop_gradient(f), 0),
                           finals)
    new_state = state.replace(
        step=state.step + 1, params=keep_new(params, state.params),
        batch_stats=keep_new(batch_stats, state.batch_stats),
        opt_state=keep_new(opt_state, state.opt_state), bad_streak=bad_streak,
        skipped=state.skipped + (1 - finite.astype(jnp.int32)), carry=carry)
    metrics = {k: v / sums["count"] for k, v in sums.items() if k != "count"}
    metrics.update(grad_norm=grad_norm, learning_rate=lr,
                   skipped=1.0 - finite.astype(jnp.float32), bad_streak=bad_streak)
    return new_state, metrics

  return jax.jit(train_step, donate_argnums=0)


def make_batch_stats_step(model, mesh=None) -> Callable:
  """(params, zero batch_stats, batch) -> (this batch's own statistics of
  every batch norm, mean and unbiased variance (the running-average update
  from zero, divided by 1 - momentum), the rows behind each step of the
  per-step norms (`layers.COUNTS`)); on a `mesh` of several devices, a
  per-device map whose statistics cover all."""

  def batch_stats_step(params, zeros, batch):
    _, updated = model.apply({"params": params, "batch_stats": zeros}, batch["inputs"],
                             seq_lengths=batch.get("lengths"), train=True,
                             rngs={"dropout": jax.random.PRNGKey(0)},
                             mutable=["batch_stats", layers.COUNTS])
    stats = jax.tree.map(lambda s: s / (1.0 - layers.BN_MOMENTUM), updated["batch_stats"])
    return stats, updated.get(layers.COUNTS, {})

  return jax.jit(_per_device(batch_stats_step, mesh, (_SAME, _SAME, _ROWS), _SAME))


def _model_inputs(batch: dict) -> dict:
  """What the model reads of a batch: inputs and, if given, lengths."""
  return {k: batch[k] for k in ("inputs", "lengths") if k in batch}


def precise_batch_stats(batch_stats_step, state: TrainState, batches, mesh):
  """Batch-norm statistics of the current parameters: the mean over `batches`.

  The running averages mix statistics of the last ~10 parameter versions; on
  long ReLU sequences (pixel MNIST) they can lag far enough to ruin evaluation.
  Per-step norms weight each batch's statistics at a step by the rows that
  reach it there, as the running average counts only steps two or more rows
  reach; a step no batch has two rows at keeps its running statistics.
  """
  zeros = jax.tree.map(jnp.zeros_like, state.batch_stats)
  total, weight = None, None
  for batch in batches:
    stats, counts = batch_stats_step(state.params, zeros,
                                     parallel.shard_batch(_model_inputs(batch), mesh))
    rows = _rows_behind(stats, counts)
    weighted = jax.tree.map(jnp.multiply, stats, rows)
    total = weighted if total is None else jax.tree.map(jnp.add, total, weighted)
    weight = rows if weight is None else jax.tree.map(jnp.add, weight, rows)
  return jax.tree.map(lambda t, w, old: jnp.where(w > 0, t / jnp.maximum(w, 1), old),
                      total, weight, state.batch_stats)


def _rows_behind(stats: dict, counts: dict) -> dict:
  """Each statistic's weight in the mean over batches: for a per-step norm its
  rows per step, counts[T, 1] (sown as a 1-tuple), 0 where fewer than two;
  else 1."""
  if "count" in counts:
    rows = counts["count"][0]
    return {k: jnp.where(rows > 1, rows, 0.0) for k in stats}
  return {k: _rows_behind(v, counts.get(k, {})) if isinstance(v, dict) else jnp.float32(1.0)
          for k, v in stats.items()}


def make_eval_step(model, task: str, mesh=None) -> Callable:
  """(params, batch_stats, batch, states or None) -> (summed metrics, final
  states); on a `mesh` of several devices, a per-device map over the rows."""

  def eval_step(params, batch_stats, batch, states):
    outputs, finals = model.apply(variables_of(params, batch_stats), batch["inputs"],
                                  states, seq_lengths=batch.get("lengths"), train=False)
    return parallel.sum_over_devices(tasks.batch_metrics(task, outputs, batch)), finals

  return jax.jit(_per_device(eval_step, mesh, (_SAME, _SAME, _ROWS, _ROWS), (_SAME, _ROWS)))


def evaluate(eval_step, state: TrainState, dataset, split: str, mesh,
             batch_stats_step=None) -> dict:
  """Mean metrics over a split; with `carries_state` the recurrent states run
  on from each batch to the next, from zero; `batch_stats_step`: see
  `evaluation_sums`."""
  return tasks.mean_metrics(dataset.task, evaluation_sums(eval_step, state, dataset, split,
                                                          mesh, batch_stats_step))


def own_batch_stats(batch_stats_step, state: TrainState, batch: dict, mesh):
  """The batch-norm statistics of `batch`'s valid rows (mask > 0) under the
  current parameters, for evaluating the batch with its own statistics. On
  several devices the rows are cut to a multiple of their number (the running
  statistics where none are left); as in `precise_batch_stats`, a step of a
  per-step norm that fewer than two rows reach keeps its running statistics."""
  mask = np.asarray(batch["mask"])
  rows = np.flatnonzero(mask.reshape(len(mask), -1).max(1) > 0)
  rows = rows[:len(rows) - len(rows) % mesh.devices.size]
  if not len(rows):
    return state.batch_stats
  valid = {k: np.asarray(v)[rows] for k, v in _model_inputs(batch).items()}
  return precise_batch_stats(batch_stats_step, state, [valid], mesh)


def evaluation_sums(eval_step, state: TrainState, dataset, split: str, mesh,
                    batch_stats_step=None) -> dict:
  """The summed metrics of `evaluate` and their "count" (examples, or tokens);
  with a `batch_stats_step` each batch is normalised by its own statistics
  (`own_batch_stats`)."""
  carry_state = getattr(dataset, "carries_state", False)
  totals, states = None, None
  for batch in dataset.eval_batches(split):
    stats = state.batch_stats
    if batch_stats_step is not None and stats:
      stats = own_batch_stats(batch_stats_step, state, batch, mesh)
    sums, finals = eval_step(state.params, stats, parallel.shard_batch(batch, mesh), states)
    states = finals if carry_state else None
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise ValueError(f"evaluation split {split!r} has no examples")
  return jax.device_get(totals)


def steps_to_train(train_cfg, dataset) -> int:
  """config.train.num_steps, or with num_epochs > 0 ceil(num_epochs *
  dataset.steps_per_epoch); ValueError for a data set without epochs."""
  if not train_cfg.num_epochs:
    return int(train_cfg.num_steps)
  per_epoch = getattr(dataset, "steps_per_epoch", None)
  if not per_epoch:
    raise ValueError(f"config.train.num_epochs={train_cfg.num_epochs}: this data set "
                     f"({type(dataset).__name__}) has no fixed training set, so no "
                     "steps_per_epoch; set config.train.num_steps and num_epochs=0")
  return max(math.ceil(train_cfg.num_epochs * per_epoch), 1)


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


class _Progress:
  """Averages the per-step metrics of one logging window and prints a line."""

  def __init__(self, task: str, num_steps: int, start_step: int, max_bad_streak: int):
    self.task = task
    self.num_steps = num_steps
    self.max_bad_streak = max_bad_streak
    self.pending: list[tuple[int, dict]] = []
    self.window_start = time.time()
    self.window_step = start_step

  def add(self, step: int, metrics: dict):
    self.pending.append((step, metrics))

  def flush(self, step: int, writer: MetricWriter) -> dict:
    """Fetch pending metrics (one host sync), check the non-finite streak, write."""
    fetched = jax.device_get(self.pending)
    self.pending = []
    for s, m in fetched:
      if int(m["bad_streak"]) >= self.max_bad_streak:
        raise FloatingPointError(
            f"{int(m['bad_streak'])} non-finite updates in a row, the last at step {s}; "
            "all were skipped")
    if not fetched:
      return {}
    now = time.time()
    rate = (step - self.window_step) / max(now - self.window_start, 1e-9)
    self.window_start, self.window_step = now, step
    means = {f"train/{k}": float(np.mean([m[k] for _, m in fetched]))
             for k in fetched[0][1] if k not in ("skipped", "bad_streak")}
    means.update({f"train/{k}": v for k, v in
                  tasks.derived_metrics(self.task, means["train/loss"]).items()})
    means["train/skipped_updates"] = float(sum(m["skipped"] for _, m in fetched))
    means["train/steps_per_second"] = rate
    writer.write_scalars(step, means)
    eta = (self.num_steps - step) / max(rate, 1e-9)
    shown = ", ".join(f"{k[6:]}={v:.4g}" for k, v in means.items()
                      if k in ("train/loss", "train/accuracy", "train/grad_norm"))
    logging.info("step %d/%d (%.1f%%) %s, %.2f steps/s, ETA %s", step,
                 self.num_steps, 100.0 * step / self.num_steps, shown, rate,
                 _format_duration(eta))
    return means


class _QuietLibraries:
  """Drops info-level log lines of orbax (several per checkpoint)."""

  def filter(self, record):
    return record.levelno >= 30 or "/orbax/" not in record.pathname


def quiet_library_logs():
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())


def _agreed(flag: bool, may_sync: bool) -> bool:
  """`flag` as process 0 sees it. With several processes every one must stop
  at the same step, so they ask process 0, only at steps where `may_sync`
  (a host round trip costs time)."""
  if jax.process_count() == 1:
    return flag
  return may_sync and bool(parallel.value_of_main_process(flag))


def _read_json(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _save_json(path: str, payload: dict):
  if not parallel.is_main_process():
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


class Interrupted(Exception):
  """SIGINT or SIGTERM stopped training after saving a checkpoint at `step`."""

  def __init__(self, signum: int, step: int):
    super().__init__(f"{signal.Signals(signum).name}: stopped at step {step}, checkpoint "
                     "saved; rerun the same command to resume")
    self.signum, self.step = signum, step


class _Interrupts:
  """While training: the first SIGINT or SIGTERM asks the loop to save a
  checkpoint and stop after the current step; a second exits at once."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signum = None
    self.previous = {}
    if threading.current_thread() is threading.main_thread():
      self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None:
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.signum = signum
    logging.warning("%s: saving a checkpoint after this step, then stopping (again to "
                    "exit at once)", signal.Signals(signum).name)

  def restore(self):
    for s, handler in self.previous.items():
      signal.signal(s, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False) -> dict:
  """Train `config` in `workdir` (resuming if it holds a checkpoint).

  Nothing is written before the config and the data are checked. A resumed
  run must have the config of config.json, but for budgets and intervals
  (`workdir.MAY_CHANGE`); `allow_config_change` lets other fields change from
  the resumed step, recorded in config_history.jsonl. One process trains in a
  workdir at a time (`workdir.Lock`). Returns the final metrics, also written
  to workdir/metrics.json.
  """
  quiet_library_logs()
  built = run.build(config, workdir)  # Validates the config first.
  mesh = parallel.data_mesh()
  parallel.check_divisible(config.data.batch_size, "data.batch_size", mesh)
  parallel.check_divisible(config.data.eval_batch_size, "data.eval_batch_size", mesh)
  num_steps = steps_to_train(config.train, built.dataset)
  best_checkpoint.check_metric(config.train, built)
  resolved = json.loads(config.to_json_best_effort())
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  steps = checkpoints.saved_steps(os.path.join(workdir, "checkpoints"))
  resume_step = steps[-1] if steps else 0
  changes, saved = None, workdir_lib.saved_config(workdir)
  if saved is not None:
    changes = workdir_lib.check_config(workdir, saved, resolved, resume_step,
                                       allow_config_change)
  if steps:  # A model that no longer fits its checkpoints changes nothing in the workdir.
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), 1, 1)
    try:
      checkpointer.check_params_fit(built.state)
    finally:
      checkpointer.close()
  os.makedirs(workdir, exist_ok=True)
  main = parallel.is_main_process()
  with workdir_lib.Lock(workdir) if main else contextlib.nullcontext():
    if changes is None or changes:
      _save_json(config_path, resolved)
    if changes and set(changes) - set(workdir_lib.MAY_CHANGE) and main:
      workdir_lib.record_changes(workdir, resume_step, changes)
    if hasattr(built.dataset, "save") and main:
      built.dataset.save(workdir)
    _save_json(os.path.join(workdir, run.SPEC_FILE), dataclasses.asdict(built.spec))
    return _train(config, workdir, built, mesh, num_steps)


def _back_to_best(state: TrainState, best_kept, step: int) -> TrainState:
  """`state` with the parameters and batch-norm statistics of the best
  checkpoint (optimizer state, step and schedule kept): a plateau cut's reload."""
  saved = best_kept.restore(state) if best_kept is not None else None
  if saved is None:
    return state
  logging.info("Learning rate cut at step %d: back to the parameters of step %d",
               step, best_kept.record["step"])
  return state.replace(params=saved.params, batch_stats=saved.batch_stats)


def _train(config, workdir: str, built: run.Run, mesh, num_steps: int) -> dict:
  """The training loop of `train_and_evaluate`, from the latest checkpoint."""
  dataset, model, tx = built.dataset, built.model, built.optimizer
  carry_state = built.spec.carries_state
  state = parallel.replicate(built.state, mesh)
  t = config.train
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              t.checkpoint_every, t.keep_checkpoints)
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(state)
    logging.info("Resumed from checkpoint at step %d in %s", int(state.step), workdir)
  best_kept = (best_checkpoint.BestCheckpoint(workdir, t.select_metric, t.select_mode)
               if t.select_metric else None)
  start_step = int(state.step)
  param_count = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info("Model: %s, %d parameters; %d devices; task %s; steps %d -> %d",
               config.model.cell, param_count, mesh.devices.size, dataset.task,
               start_step, num_steps)

  train_step = make_train_step(config, model, tx, dataset.task, carry_state, mesh)
  eval_step = make_eval_step(model, dataset.task, mesh)
  batch_stats_step = make_batch_stats_step(model, mesh)
  writer = MetricWriter(workdir, start_step, active=parallel.is_main_process())
  progress = _Progress(dataset.task, num_steps, start_step, t.max_nonfinite_in_row)
  session_start = time.time()
  elapsed_before = float(state.elapsed)
  train_means, eval_results = {}, {}

  def run_evaluation(step):
    nonlocal state
    eval_start = time.time()
    if t.precise_bn_batches and state.batch_stats:
      first = max(step - t.precise_bn_batches, 0)  # The latest training batches.
      batches = (dataset.train_batch(s) for s in range(first, first + t.precise_bn_batches))
      state = state.replace(batch_stats=precise_batch_stats(
          batch_stats_step, state, batches, mesh))
    results = {}
    own_stats = batch_stats_step if t.eval_batch_stats else None
    for split in dataset.eval_splits:
      for k, v in evaluate(eval_step, state, dataset, split, mesh, own_stats).items():
        results[f"{split}/{k}"] = v
    writer.write_scalars(step, results)
    logging.info("eval at step %d: %s", step,
                 ", ".join(f"{k}={v:.4g}" for k, v in sorted(results.items())))
    if best_kept is not None:
      best_kept.offer(step, state, results)
    if config.schedule.name == "plateau":
      metric = config.schedule.plateau_metric
      if metric not in results:
        raise ValueError(f"config.schedule.plateau_metric={metric!r} is not one of "
                         f"the evaluation metrics {sorted(results)}")
      old_scale = float(state.lr_scale)
      best, count, scale = optim.plateau_update(
          config, results[metric], float(state.plateau_best),
          int(state.plateau_count), old_scale)
      state = state.replace(**parallel.replicate(
          {"plateau_best": np.float32(best), "plateau_count": np.int32(count),
           "lr_scale": np.float32(scale)}, mesh))
      if config.schedule.plateau_restore_best and scale < old_scale:
        state = _back_to_best(state, best_kept, step)
    progress.window_start += time.time() - eval_start  # Not training time.
    return results

  def save(step, evaluated: dict) -> bool:
    """Checkpoint `step` unless its parameters gave a non-finite loss: in the
    last update (skipped) or in `evaluated`, this step's evaluation."""
    if int(state.bad_streak) > 0 or not all(
        np.isfinite(v) for k, v in evaluated.items() if k.endswith("/loss")):
      logging.warning("Not saving step %d: its parameters give a non-finite loss", step)
      return False
    return checkpointer.save(step, state, force=True)

  interrupts = _Interrupts()
  try:
    for step in range(start_step, num_steps):
      batch = dataset.train_batch(step)
      if carry_state and dataset.is_epoch_start(step):
        state = state.replace(carry=jax.tree.map(jnp.zeros_like, state.carry))
      state, metrics = train_step(state, parallel.shard_batch(batch, mesh))
      progress.add(step + 1, metrics)
      done = step + 1
      out_of_time = t.time_budget_minutes > 0 and _agreed(
          elapsed_before + time.time() - session_start >= 60 * t.time_budget_minutes,
          done % t.log_every == 0)
      interrupted = _agreed(interrupts.signum is not None, done % t.log_every == 0)
      last = done == num_steps or out_of_time
      if done % t.log_every == 0 or last or done % t.checkpoint_every == 0 or interrupted:
        train_means = progress.flush(done, writer) or train_means
      evaluated = {}
      if done % t.eval_every == 0 or last:
        eval_results = evaluated = run_evaluation(done)
      if done % t.checkpoint_every == 0 or last or interrupted:
        elapsed = parallel.value_of_main_process(elapsed_before + time.time() - session_start)
        state = state.replace(elapsed=parallel.replicate(np.float32(elapsed), mesh))
        save(done, evaluated)
      if interrupted:
        raise Interrupted(interrupts.signum, done)
      if out_of_time:
        logging.info("Time budget of %g minutes reached at step %d", t.time_budget_minutes, done)
        break
    if not eval_results:  # Nothing left to train: evaluate the restored state.
      eval_results = run_evaluation(start_step)
      finished = _read_json(os.path.join(workdir, "metrics.json"))
      train_means = {k: v for k, v in finished.items() if k.startswith("train/")}
  except FloatingPointError as e:
    resume = checkpointer.latest_step()
    where = (f"the last checkpoint, at step {resume}, holds finite parameters and a rerun "
             "resumes there" if resume is not None else
             "no checkpoint was saved yet, so a rerun starts from step 0")
    raise FloatingPointError(
        f"{e}; {where}. Rerun with a lower learning rate "
        "(--config.optimizer.learning_rate=... --allow_config_change), gradient clipping "
        "or batch norm.") from e
  finally:
    interrupts.restore()
    writer.close()
    checkpointer.close()
    if best_kept is not None:
      best_kept.close()

  final = {"step": int(state.step), "skipped_updates": int(state.skipped),
           "train_seconds": elapsed_before + time.time() - session_start,
           "parameters": int(param_count), **train_means, **eval_results}
  if best_kept is not None and best_kept.record is not None:
    final["best"] = best_kept.record
  _save_json(os.path.join(workdir, "metrics.json"), final)
  logging.info("Done: %s", ", ".join(f"{k}={v:.4g}" for k, v in eval_results.items()))
  return final
