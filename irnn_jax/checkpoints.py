"""Orbax checkpoints of the whole train state, for resuming a run."""

import dataclasses
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves every `every` steps (and when forced), keeps the last `keep`."""

  def __init__(self, directory: str, every: int, keep: int):
    options = ocp.CheckpointManagerOptions(save_interval_steps=every,
                                           max_to_keep=keep)
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory), options=options,
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self):
    return self._manager.latest_step()

  def restore(self, like, step: int | None = None):
    """Restore the latest checkpoint (or `step`) into the structure and
    shardings of `like`.

    A dataclass field that holds no arrays in `like` (TrainState.carry = {})
    may be missing from the checkpoint: one written before the field existed.
    """
    step = self._manager.latest_step() if step is None else step
    if step not in self._manager.all_steps():
      raise FileNotFoundError(f"no checkpoint of step {step}; saved steps: "
                              f"{sorted(self._manager.all_steps())}")
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

  def save(self, step: int, state, force: bool = False):
    self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()

