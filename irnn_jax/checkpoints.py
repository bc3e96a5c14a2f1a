"""Orbax checkpoints of the whole train state, for resuming a run.

Orbax writes each checkpoint atomically (a temporary directory renamed when
complete). On restore, a checkpoint that cannot be read is moved aside to
checkpoints.unreadable/ (never deleted) and the next older one is tried; one
whose parameters do not fit the model is a config error, not a broken file.
"""

import dataclasses
import os
import sys
import time

from absl import logging
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

UNREADABLE = "checkpoints.unreadable"  # Beside checkpoints/: what failed to restore.


class CheckpointError(RuntimeError):
  """No checkpoint of the run can be restored."""


class CheckpointMismatch(ValueError):
  """A readable checkpoint whose parameters do not fit the model."""


def saved_steps(directory: str) -> list[int]:
  """The steps of the checkpoints in `directory`, oldest first; reads only."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def _shapes(tree) -> dict:
  """{path: shape} of the arrays (or array metadata) in `tree`."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}


def _is_callback_on_closed_loop(unraisable) -> bool:
  """Whether an unraisable exception is asyncio refusing a callback because its
  event loop is closed (raised inside `call_soon_threadsafe`)."""
  error, tb = unraisable.exc_value, unraisable.exc_traceback
  if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
    return False
  while tb is not None:
    if tb.tb_frame.f_code.co_name == "call_soon_threadsafe":
      return True
    tb = tb.tb_next
  return False


def _drop_callbacks_on_closed_loops():
  """When a restore fails, orbax closes its event loop while tensorstore still
  finishes the checkpoint's other reads; each of their callbacks then prints a
  traceback (dozens for one checkpoint) and can no longer do anything. From the
  first restore on, sys.unraisablehook drops exactly those and passes
  everything else to the hook it replaces."""
  previous = sys.unraisablehook
  if getattr(previous, "drops_callbacks_on_closed_loops", False):
    return

  def hook(unraisable):
    if not _is_callback_on_closed_loop(unraisable):
      previous(unraisable)

  hook.drops_callbacks_on_closed_loops = True
  sys.unraisablehook = hook


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:200] if text else ''}"


class Checkpointer:
  """Saves every `every` steps (and when forced), keeps the last `keep`."""

  def __init__(self, directory: str, every: int, keep: int):
    self.directory = os.path.abspath(directory)
    # Orbax names the barriers of an asynchronous save after the step, so two
    # managers saving the same step at once (checkpoints/ and checkpoints_best/)
    # would share barriers across processes and can hang; a prefix per
    # directory keeps them apart.
    multiprocessing = ocp.options.MultiprocessingOptions(
        barrier_sync_key_prefix=os.path.basename(self.directory))
    options = ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep,
                                           multiprocessing_options=multiprocessing)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self):
    return self._manager.latest_step()

  def restore(self, like, step: int | None = None):
    """The latest checkpoint that can be read (or `step`), in the structure and
    shardings of `like`. A latest one that cannot be read is moved aside, in
    one logged line, and the next older one tried; CheckpointError when none
    can. CheckpointMismatch when a checkpoint's parameters do not fit `like`."""
    _drop_callbacks_on_closed_loops()
    if step is not None:
      if step not in self._manager.all_steps():
        raise FileNotFoundError(f"no checkpoint of step {step} in {self.directory}; saved "
                                f"steps: {sorted(self._manager.all_steps())}")
      return self._restore_step(like, step)
    tried = sorted(self._manager.all_steps(), reverse=True)
    for candidate in tried:
      try:
        self._check_params_fit(like, candidate)
        return self._restore_step(like, candidate)
      except CheckpointMismatch:
        raise
      except Exception as e:  # pylint: disable=broad-except
        moved = self._move_aside(candidate)
        logging.warning("The checkpoint of step %d cannot be restored (%s); moved to %s",
                        candidate, _first_line(e), moved)
    raise CheckpointError(f"no checkpoint in {self.directory} can be restored; steps "
                          f"tried: {tried}, all moved to {self._unreadable_dir()}")

  def _unreadable_dir(self) -> str:
    return os.path.join(os.path.dirname(self.directory), UNREADABLE)

  def _move_aside(self, step: int) -> str:
    target = os.path.join(self._unreadable_dir(), f"{step}.{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(self._unreadable_dir(), exist_ok=True)
    os.replace(os.path.join(self.directory, str(step)), target)
    self._manager.reload()
    return target

  def check_params_fit(self, like):
    """CheckpointMismatch if the newest checkpoint whose metadata can be read
    holds parameters that do not fit `like`; reads only, moves nothing."""
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        self._check_params_fit(like, step)
        return
      except CheckpointMismatch:
        raise
      except Exception:  # pylint: disable=broad-except
        continue  # Unreadable: restore() will move it aside and try the next.

  def _check_params_fit(self, like, step: int):
    """CheckpointMismatch naming the parameters whose saved shapes differ from `like`."""
    saved = _shapes(self._manager.item_metadata(step)["params"])
    wanted = _shapes(like.params)
    differ = [f"{k}: saved {saved.get(k, 'absent')}, model {wanted.get(k, 'absent')}"
              for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k)]
    if differ:
      raise CheckpointMismatch(
          f"the checkpoint of step {step} in {self.directory} holds parameters that do not "
          f"fit this model (its config changed?): " + "; ".join(differ[:4])
          + (f"; and {len(differ) - 4} more" if len(differ) > 4 else "")
          + ". Use a new --workdir for a new model.")

  def _restore_step(self, like, step: int):
    """Checkpoint `step` into the structure of `like`.

    A dataclass field that holds no arrays in `like` (TrainState.carry = {})
    may be missing from the checkpoint: one written before the field existed.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    if dataclasses.is_dataclass(like):
      saved = set(self._manager.item_metadata(step).keys())
      names = [f.name for f in dataclasses.fields(like)]
      absent = [n for n in names if n not in saved]
      if absent and not jax.tree.leaves([getattr(like, n) for n in absent]):
        target = {n: getattr(abstract, n) for n in names if n in saved}
        return like.replace(**self._manager.restore(
            step, args=ocp.args.StandardRestore(target)))
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def save(self, step: int, state, force: bool = False, metadata: dict | None = None) -> bool:
    """Save `state` as step `step` unless a parameter is not finite (then
    warn); whether it was saved. `metadata` (JSON) is written inside the
    checkpoint, so the two appear together; `metadata(step)` reads it."""
    if not bool(jax.tree.reduce(lambda a, b: a & b, jax.tree.map(
        lambda p: jnp.all(jnp.isfinite(p)), state.params))):
      logging.warning("Not saving step %d: some parameters are not finite", step)
      return False
    return bool(self._manager.save(step, args=ocp.args.StandardSave(state), force=force,
                                   custom_metadata=metadata))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def metadata(self, step: int) -> dict:
    """What `save(step, ..., metadata=...)` wrote with checkpoint `step` ({} if nothing)."""
    return dict(self._manager.metadata(step).custom_metadata or {})

  def delete(self, step: int):
    self._manager.delete(step)

  def wait(self):
    """Until the saves under way are on disk."""
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()

