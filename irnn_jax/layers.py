"""Recurrent layers: a cell plus batch norm, time-shared dropout, direction."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from irnn_jax.cells import CellSpec, RecurrentCell

NORMS = ("none", "sequence", "per_step")
NORM_POSITIONS = ("pre", "post")
BN_MOMENTUM = 0.9  # Running-average decay; PyTorch's momentum 0.1.


class PerStepBatchNorm(nn.Module):
  """Batch norm with separate statistics for every time step (IndRNN's choice
  for language models). Input x[T, B, H]; running stats are [T_max, H], scale
  and bias are shared over time. Shorter sequences use the first T rows."""
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, *, train: bool):
    steps, features = x.shape[0], x.shape[-1]
    mean_stat = self.variable("batch_stats", "mean", jnp.zeros, (steps, features))
    var_stat = self.variable("batch_stats", "var", jnp.ones, (steps, features))
    scale = self.param("scale", nn.initializers.ones, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    if train:
      if steps != mean_stat.value.shape[0]:
        raise ValueError(f"per-step batch norm was built for {mean_stat.value.shape[0]}"
                         f" steps, got {steps} in training")
      mean = x.mean(axis=1)
      var = x.var(axis=1)
      if not self.is_initializing():
        m = BN_MOMENTUM
        mean_stat.value = m * mean_stat.value + (1 - m) * mean
        var_stat.value = m * var_stat.value + (1 - m) * var
    else:
      if steps > mean_stat.value.shape[0]:
        raise ValueError(f"per-step batch norm has statistics for "
                         f"{mean_stat.value.shape[0]} steps, got {steps}")
      mean, var = mean_stat.value[:steps], var_stat.value[:steps]
    y = (x - mean[:, None]) / jnp.sqrt(var[:, None] + self.epsilon)
    return y * scale + bias


def batch_norm(kind: str, name: str):
  """A batch norm over x[T, B, H]: statistics over time and batch, or per step."""
  if kind == "sequence":
    return nn.BatchNorm(momentum=BN_MOMENTUM, name=name)
  if kind == "per_step":
    return PerStepBatchNorm(name=name)
  raise ValueError(f"unknown norm {kind!r}; choose from {NORMS}")


def apply_norm(norm: nn.Module, x, train: bool):
  if isinstance(norm, nn.BatchNorm):
    return norm(x, use_running_average=not train)
  return norm(x, train=train)


class RecurrentLayer(nn.Module):
  """A recurrent layer over time-major x[T, B, D] -> (h[T, B, H or 2H], states).

  norm_position "pre" normalises the input projection, before the recurrence
  and its activation; "post" normalises the layer output. Dropout uses one mask
  per sequence, shared by all time steps. `states` is a tuple with one state
  per direction.
  """
  spec: CellSpec
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0
  bidirectional: bool = False

  @nn.compact
  def __call__(self, x, states: Any = None, *, train: bool):
    directions = ("forward", "backward") if self.bidirectional else ("forward",)
    outputs, finals = [], []
    for i, direction in enumerate(directions):
      cell = RecurrentCell(self.spec, name=direction)
      reverse = direction == "backward"
      z = cell.project(x[::-1] if reverse else x)
      if self.norm != "none" and self.norm_position == "pre":
        z = apply_norm(batch_norm(self.norm, f"{direction}_norm"), z, train)
      h, final = cell.recur(z, None if states is None else states[i])
      outputs.append(h[::-1] if reverse else h)
      finals.append(final)
    h = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
    if self.norm != "none" and self.norm_position == "post":
      h = apply_norm(batch_norm(self.norm, "norm"), h, train)
    if self.dropout > 0:
      h = nn.Dropout(self.dropout, broadcast_dims=(0,))(h, deterministic=not train)
    return h, tuple(finals)
