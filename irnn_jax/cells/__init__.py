"""Recurrent cells, one module each, found by the name configs use.

  cells.get("indrnn") -> IndRNNCell;  cells.names() -> every registered name.
A new cell is a subclass of `RecurrentCellBase` in its own module with
`@register("name")`, imported below (docs/extending.md).
"""

from irnn_jax.cells.base import REGISTRY, InputProjection, RecurrentCellBase, register
from irnn_jax.cells.gru import GRUCell
from irnn_jax.cells.indrnn import IndRNNCell
from irnn_jax.cells.irnn import IRNNCell
from irnn_jax.cells.lstm import LSTMCell
from irnn_jax.cells.rnn import TanhRNNCell


def names() -> tuple[str, ...]:
  return tuple(REGISTRY)


def get(name: str) -> type[RecurrentCellBase]:
  """The cell class registered as `name`."""
  if name not in REGISTRY:
    raise ValueError(f"config.model.cell: unknown cell {name!r}; choose from {names()}")
  return REGISTRY[name]
