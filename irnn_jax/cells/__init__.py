"""Recurrent cells, one module each, found by the name configs use.

  cells.get("indrnn") -> IndRNNCell;  cells.names() -> every registered name.
Every module in this folder is imported here, so a new cell is one module with
a `RecurrentCellBase` subclass marked `@register("name")` (docs/extending.md).
"""

import importlib
import pkgutil

from irnn_jax.cells.base import REGISTRY, InputProjection, RecurrentCellBase, register
from irnn_jax.cells.gru import GRUCell
from irnn_jax.cells.indrnn import IndRNNCell
from irnn_jax.cells.irnn import IRNNCell
from irnn_jax.cells.lstm import LSTMCell
from irnn_jax.cells.rnn import TanhRNNCell

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["GRUCell", "IndRNNCell", "IRNNCell", "InputProjection", "LSTMCell",
           "RecurrentCellBase", "TanhRNNCell", "get", "names", "register"]


def names() -> tuple[str, ...]:
  """Registered cell names, in the order their modules were imported."""
  return tuple(REGISTRY)


def get(name: str) -> type[RecurrentCellBase]:
  """The cell class registered as `name`."""
  if name not in REGISTRY:
    raise ValueError(f"config.model.cell: unknown cell {name!r}; choose from {names()}")
  return REGISTRY[name]
