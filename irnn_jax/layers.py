"""Recurrent layers: a cell plus batch norm, time-shared dropout, direction."""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from irnn_jax import parallel, recurrences
from irnn_jax.cells import RecurrentCellBase

NORMS = ("none", "sequence", "per_step")
NORM_POSITIONS = ("pre", "post")
BN_MOMENTUM = 0.9  # Running-average decay; PyTorch's momentum 0.1.


def _track_running_stats(module: nn.Module, mean_stat, var_stat, mean, var):
  """Moves the running averages towards this batch's statistics (not at init);
  `var` is the unbiased variance, as PyTorch's running_var."""
  if not module.is_initializing():
    m = BN_MOMENTUM
    mean_stat.value = m * mean_stat.value + (1 - m) * mean
    var_stat.value = m * var_stat.value + (1 - m) * var


def _batch_moments(total, squared_deviations, count: int):
  """(mean, variance M2 / n, unbiased variance M2 / (n - 1)) from the sum of
  x and the sum M2 of (x - mean)^2 over `count` values (as
  `recurrences.sequence_sums`). Inside the training step's per-device map, of
  all devices' values: the global mean first, then each device's M2_d moved
  to it, sum_d (M2_d + n_d (mean_d - mean)^2), with no E[x^2] - E[x]^2 to
  cancel."""
  all_count = count * parallel.data_devices()
  mean = parallel.sum_over_devices(total) / all_count
  squared_deviations = parallel.sum_over_devices(
      squared_deviations + count * jnp.square(total / count - mean))
  return mean, squared_deviations / all_count, squared_deviations / max(all_count - 1, 1)


def can_fold_norm(norm: str, norm_position: str, dropout: float) -> bool:
  """Whether a layer's output batch norm can be left to the next layer's
  input projection to fold (`PendingNorm`): one affine map per feature."""
  return norm == "sequence" and norm_position == "post" and dropout == 0


class PerStepBatchNorm(nn.Module):
  """Batch norm with separate statistics for every time step (IndRNN's choice
  for language models). Input x[T, B, H]; running stats are [T_max, H], scale
  and bias are shared over time. Shorter sequences use the first T rows.
  Training normalises by the batch variance and tracks the unbiased one in
  the running average, as PyTorch."""
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
      mean, var, unbiased_var = _batch_moments(*recurrences.sequence_sums(x, axes=(1,)),
                                               x.shape[1])
      _track_running_stats(self, mean_stat, var_stat, mean, unbiased_var)
    else:
      if steps > mean_stat.value.shape[0]:
        raise ValueError(f"per-step batch norm has statistics for "
                         f"{mean_stat.value.shape[0]} steps, got {steps}")
      mean, var = mean_stat.value[:steps], var_stat.value[:steps]
    y = (x - mean[:, None]) / jnp.sqrt(var[:, None] + self.epsilon)
    return y * scale + bias


class SequenceBatchNorm(nn.Module):
  """Batch norm of x[T, B, H] with one set of statistics over time and batch.

  `affine` returns the normalisation as y = x * scale + shift (vectors [H]),
  so that a following matrix product can absorb it (`PendingNorm`). Training
  normalises by the batch variance and tracks the unbiased one in the running
  average, as PyTorch.
  """
  epsilon: float = 1e-5

  @nn.compact
  def affine(self, x, *, train: bool, sums=()):
    """(scale, shift); in training from this batch's statistics, taken from
    `sums` = (sum of x, sum of (x - mean)^2) over all but the last axis when
    given (as `recurrences.sequence_sums`)."""
    features = x.shape[-1]
    mean_stat = self.variable("batch_stats", "mean", jnp.zeros, (features,))
    var_stat = self.variable("batch_stats", "var", jnp.ones, (features,))
    gamma = self.param("scale", nn.initializers.ones, (features,))
    beta = self.param("bias", nn.initializers.zeros, (features,))
    if train:
      total, squared_deviations = sums or recurrences.sequence_sums(x)
      mean, var, unbiased_var = _batch_moments(total, squared_deviations, x.size // features)
      _track_running_stats(self, mean_stat, var_stat, mean, unbiased_var)
    else:
      mean, var = mean_stat.value, var_stat.value
    scale = gamma * jax.lax.rsqrt(var + self.epsilon)
    return scale, beta - mean * scale

  def __call__(self, x, *, train: bool, sums=()):
    scale, shift = self.affine(x, train=train, sums=sums)
    return x * scale + shift


class PendingNorm(NamedTuple):
  """A layer output whose batch norm is not applied yet: the sequence is
  `values * scale + shift`. The next layer's input projection folds the
  affine map into its kernel, so the normalised sequence is never written."""
  values: jax.Array
  scale: jax.Array
  shift: jax.Array

  def materialize(self) -> jax.Array:
    return self.values * self.scale + self.shift


def batch_norm(kind: str, name: str):
  """A batch norm over x[T, B, H]: statistics over time and batch, or per step."""
  if kind == "sequence":
    return SequenceBatchNorm(name=name)
  if kind == "per_step":
    return PerStepBatchNorm(name=name)
  raise ValueError(f"unknown norm {kind!r}; choose from {NORMS}")


class RecurrentLayer(nn.Module):
  """A recurrent layer over time-major x[T, B, D] -> (h[T, B, H or 2H], states).

  `cell` is an unbound cell (`irnn_jax.cells`); each direction runs a copy of
  it, named "forward" and "backward".

  norm_position "pre" normalises the input projection, before the recurrence
  and its activation; "post" normalises the layer output. Dropout uses one mask
  per sequence, shared by all time steps. `states` is a tuple with one state
  per direction.
  """
  cell: RecurrentCellBase
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0
  bidirectional: bool = False

  @nn.compact
  def __call__(self, x, states: Any = None, *, train: bool, defer_norm: bool = False):
    """x is an array or a `PendingNorm`. With `defer_norm` (needs
    `can_fold_norm`) the output is a `PendingNorm` for the next layer."""
    if defer_norm and not can_fold_norm(self.norm, self.norm_position, self.dropout):
      raise ValueError("defer_norm needs norm='sequence', norm_position='post' and no dropout")
    x, x_scale, x_shift = x if isinstance(x, PendingNorm) else (x, None, None)
    directions = ("forward", "backward") if self.bidirectional else ("forward",)
    pre_norm = self.norm != "none" and self.norm_position == "pre"
    # Batch norm over the sequence after the layer: its statistics are summed
    # inside the time loop where the cell can (no pass over h after it).
    loop_sums = train and self.norm == "sequence" and self.norm_position == "post"
    outputs, finals, sums = [], [], []
    for i, direction in enumerate(directions):
      cell = self.cell.copy(name=direction)
      reverse = direction == "backward"
      z, bias = cell.project(x[::-1] if reverse else x, x_scale, x_shift)
      if pre_norm:
        z, bias = batch_norm(self.norm, f"{direction}_norm")(z + bias, train=train), None
      h, final, direction_sums = cell.recur(z, None if states is None else states[i],
                                            bias, moments=loop_sums)
      outputs.append(h[::-1] if reverse else h)
      finals.append(final)
      sums.append(direction_sums)
    h = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
    sums = tuple(map(jnp.concatenate, zip(*sums))) if all(sums) else ()
    if self.norm != "none" and self.norm_position == "post":
      norm = batch_norm(self.norm, "norm")
      kwargs = {"sums": sums} if sums else {}  # Only a sequence norm takes them.
      if defer_norm:
        return PendingNorm(h, *norm.affine(h, train=train, **kwargs)), tuple(finals)
      h = norm(h, train=train, **kwargs)
    if self.dropout > 0:
      h = nn.Dropout(self.dropout, broadcast_dims=(0,))(h, deterministic=not train)
    return h, tuple(finals)


def constrain_directions(cell: RecurrentCellBase, params: dict) -> dict:
  """`cell.constrain` applied to the parameters of each direction of a
  RecurrentLayer (`params` is the layer's subtree)."""
  return {k: cell.constrain(v) if k in ("forward", "backward") else v
          for k, v in params.items()}
