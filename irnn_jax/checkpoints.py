"""Orbax checkpoints of the whole train state, for resuming a run."""

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves every `every` steps (and when forced), keeps the last `keep`."""

  def __init__(self, directory: str, every: int, keep: int):
    options = ocp.CheckpointManagerOptions(save_interval_steps=every,
                                           max_to_keep=keep)
    self._manager = ocp.CheckpointManager(os.path.abspath(directory),
                                          options=options)

  def latest_step(self):
    return self._manager.latest_step()

  def restore(self, like):
    """Restore the latest checkpoint into the structure and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._manager.restore(self._manager.latest_step(),
                                 args=ocp.args.StandardRestore(abstract))

  def save(self, step: int, state, force: bool = False):
    self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
