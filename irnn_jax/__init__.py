"""irnn_jax: recurrent networks for long-range dependencies (IRNN, IndRNN) in JAX/Flax.

The library, for one's own Flax models (docs/library.md):
  cells   IndRNNCell, IRNNCell, TanhRNNCell, LSTMCell, GRUCell (`flax.linen.RNN` works
          with each, one step at a time);
  layers  RecurrentLayer (a cell over a whole batch-major sequence x[B, T, D] through its
          fused loop, with seq_lengths, batch norm, time-shared dropout, both directions)
          and RecurrentStack (plain, residual or dense stacks of them);
  runs    load_run(workdir): a finished run's config, model, state, data and predict.
"""

from irnn_jax.cells import GRUCell, IndRNNCell, IRNNCell, LSTMCell, RecurrentCellBase, TanhRNNCell
from irnn_jax.layers import RecurrentLayer
from irnn_jax.models import RecurrentStack, SequenceModel

__all__ = ["GRUCell", "IndRNNCell", "IRNNCell", "LSTMCell", "RecurrentCellBase", "TanhRNNCell",
           "RecurrentLayer", "RecurrentStack", "SequenceModel", "load_run"]


def __getattr__(name):
  # The run loader brings in the data sets; it is imported when first asked for.
  if name == "load_run":
    from irnn_jax.run import load_run
    return load_run
  raise AttributeError(f"module 'irnn_jax' has no attribute {name!r}")
