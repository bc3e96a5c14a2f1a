"""Recurrent layers: a cell plus batch norm, time-shared dropout, direction,
over sequences of different lengths."""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from irnn_jax import parallel, recurrences
from irnn_jax.cells import RecurrentCellBase

NORMS = ("none", "sequence", "per_step")
NORM_POSITIONS = ("pre", "post")
BN_MOMENTUM = 0.9  # Running-average decay; PyTorch's momentum 0.1.


def _track_running_stats(module: nn.Module, mean_stat, var_stat, mean, var, seen=None):
  """Moves the running averages towards this batch's statistics (not at init);
  `var` is the unbiased variance, as PyTorch's running_var. Where `seen` is
  False (no valid value in the batch) they stay."""
  if not module.is_initializing():
    m = BN_MOMENTUM
    new_mean = m * mean_stat.value + (1 - m) * mean
    new_var = m * var_stat.value + (1 - m) * var
    if seen is not None:
      new_mean = jnp.where(seen, new_mean, mean_stat.value)
      new_var = jnp.where(seen, new_var, var_stat.value)
    mean_stat.value, var_stat.value = new_mean, new_var


def _batch_moments(total, squared_deviations, count):
  """(mean, variance M2 / n, unbiased variance M2 / (n - 1), n) from the sum
  of x and the sum M2 of (x - mean)^2 over `count` values (as
  `recurrences.sequence_sums`; an int, or an array of valid counts that
  broadcasts against the sums). Inside the training step's per-device map, of
  all devices' values: the global mean first, then each device's M2_d moved
  to it, sum_d (M2_d + n_d (mean_d - mean)^2), with no E[x^2] - E[x]^2 to
  cancel."""
  if isinstance(count, int):
    all_count = count * parallel.data_devices()
    mean = parallel.sum_over_devices(total) / all_count
    squared_deviations = parallel.sum_over_devices(
        squared_deviations + count * jnp.square(total / count - mean))
    return (mean, squared_deviations / all_count,
            squared_deviations / max(all_count - 1, 1), all_count)
  all_count = parallel.sum_over_devices(count)
  mean = parallel.sum_over_devices(total) / jnp.maximum(all_count, 1)
  squared_deviations = parallel.sum_over_devices(
      squared_deviations + count * jnp.square(total / jnp.maximum(count, 1) - mean))
  return (mean, squared_deviations / jnp.maximum(all_count, 1),
          squared_deviations / jnp.maximum(all_count - 1, 1), all_count)


COUNTS = "batch_counts"  # Collection: rows behind each step's statistics (PerStepBatchNorm).


def can_fold_norm(norm: str, norm_position: str, dropout: float) -> bool:
  """Whether a layer's output batch norm can be left to the next layer's
  input projection to fold (`PendingNorm`): one affine map per feature."""
  return norm == "sequence" and norm_position == "post" and dropout == 0


class PerStepBatchNorm(nn.Module):
  """Batch norm with separate statistics for every time step (IndRNN's choice
  for language models). Input x[T, B, H]; running stats are [T_max, H], scale
  and bias are shared over time. Shorter sequences use the first T rows.
  Training normalises by the batch variance and tracks the unbiased one in
  the running average, as PyTorch; with `valid[T, B, 1]` each step's
  statistics count only the rows valid there (a step fewer than two rows
  reach leaves its running statistics as they were), and each step's row
  count goes to the `COUNTS` collection where it is mutable."""
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, *, train: bool, valid=None):
    steps, features = x.shape[0], x.shape[-1]
    mean_stat = self.variable("batch_stats", "mean", jnp.zeros, (steps, features))
    var_stat = self.variable("batch_stats", "var", jnp.ones, (steps, features))
    scale = self.param("scale", nn.initializers.ones, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    if train:
      if steps != mean_stat.value.shape[0]:
        raise ValueError(f"per-step batch norm was built for {mean_stat.value.shape[0]}"
                         f" steps, got {steps} in training")
      count = x.shape[1] if valid is None else recurrences.valid_count(x, (1,), valid)
      mean, var, unbiased_var, seen = _batch_moments(
          *recurrences.sequence_sums(x, axes=(1,), valid=valid), count)
      # A step's running statistics move only where more than one row reaches
      # it: one row has no spread, and would pull the running variance to 0.
      _track_running_stats(self, mean_stat, var_stat, mean, unbiased_var,
                           None if valid is None else seen > 1)
      self.sow(COUNTS, "count", jnp.broadcast_to(jnp.asarray(seen, jnp.float32), (steps, 1)))
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
  average, as PyTorch; with `valid[T, B, 1]` the statistics count only the
  valid steps.
  """
  epsilon: float = 1e-5

  @nn.compact
  def affine(self, x, *, train: bool, sums=(), valid=None):
    """(scale, shift); in training from this batch's statistics, taken from
    `sums` = (sum of x, sum of (x - mean)^2) over all but the last (valid)
    values when given (as `recurrences.sequence_sums`)."""
    features = x.shape[-1]
    mean_stat = self.variable("batch_stats", "mean", jnp.zeros, (features,))
    var_stat = self.variable("batch_stats", "var", jnp.ones, (features,))
    gamma = self.param("scale", nn.initializers.ones, (features,))
    beta = self.param("bias", nn.initializers.zeros, (features,))
    if train:
      total, squared_deviations = sums or recurrences.sequence_sums(x, valid=valid)
      axes = tuple(range(x.ndim - 1))
      count = (x.size // features if valid is None
               else recurrences.valid_count(x, axes, valid))
      mean, var, unbiased_var, _ = _batch_moments(total, squared_deviations, count)
      _track_running_stats(self, mean_stat, var_stat, mean, unbiased_var)
    else:
      mean, var = mean_stat.value, var_stat.value
    scale = gamma * jax.lax.rsqrt(var + self.epsilon)
    return scale, beta - mean * scale

  def __call__(self, x, *, train: bool, sums=(), valid=None):
    scale, shift = self.affine(x, train=train, sums=sums, valid=valid)
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


def flip_sequences(x, lengths=None):
  """x[T, B, ...] with each row's first lengths[b] steps in reverse order and
  its padding left in place (all steps reversed without `lengths`)."""
  if lengths is None:
    return x[::-1]
  steps = jnp.arange(x.shape[0])[:, None]
  index = jnp.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)
  return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=0)


def check_lengths(seq_lengths, shape: tuple[int, int], where: str):
  """seq_lengths (None, or integers [B], any array-like) as an array, for
  time-major inputs of `shape` (T, B). Concrete lengths outside [1, T] raise;
  traced ones (under jit) are clipped into it."""
  if seq_lengths is None:
    return None
  steps, batch = shape
  lengths = jnp.asarray(seq_lengths)
  if lengths.shape != (batch,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise ValueError(f"{where}: seq_lengths must be integers of shape ({batch},), one per "
                     f"sequence, got {lengths.dtype} {tuple(lengths.shape)}")
  if isinstance(lengths, jax.core.Tracer):
    return jnp.clip(lengths, 1, steps)
  bad = np.flatnonzero((np.asarray(lengths) < 1) | (np.asarray(lengths) > steps))
  if len(bad):
    raise ValueError(f"{where}: seq_lengths[{bad[0]}] = {int(lengths[bad[0]])}; each length "
                     f"must be in [1, {steps}], the inputs' time steps")
  return lengths


def training_flag(train, norm: str, dropout: float, where: str) -> bool:
  """`train` as given; unset (None) means evaluation, allowed only where no
  batch norm or dropout would behave differently."""
  if train is None:
    if norm != "none" or dropout > 0:
      raise ValueError(f"{where} has batch norm or dropout: call it with train=True "
                       "(training) or train=False (evaluation)")
    return False
  return train


class RecurrentLayer(nn.Module):
  """A recurrent layer: x[B, T, D] -> h[B, T, H] (2H if bidirectional).

  `cell` is an unbound cell (`irnn_jax.cells`); each direction runs a copy of
  it, named "forward" and "backward", through the cell's fused loop.

  As `flax.linen.RNN`: `seq_lengths[B]` (each >= 1) gives each sequence's
  length in a padded batch; the state stops changing after a sequence's last
  step, and its outputs there are zero. `reverse` runs each sequence from its
  last valid step to its first; `keep_order` then returns the outputs in input
  order. `return_carry` returns (carry, h), the carry a tuple with each
  direction's final state (at each sequence's last valid step), which is also
  what `initial_carry` takes. `time_major` takes and returns [T, B, ...].

  norm "sequence" is batch norm over time and batch, "per_step" with separate
  statistics per step; both count only valid steps. norm_position "pre"
  normalises the input projection, before the recurrence and its activation;
  "post" the layer output. Dropout uses one mask per sequence, shared by all
  time steps. A bidirectional layer's backward direction reverses each
  sequence within its own length.
  """
  cell: RecurrentCellBase
  norm: str = "none"
  norm_position: str = "post"
  dropout: float = 0.0
  bidirectional: bool = False
  reverse: bool = False
  keep_order: bool = False
  return_carry: bool = False
  time_major: bool = False

  @nn.compact
  def __call__(self, x, initial_carry: Any = None, *, seq_lengths=None, train=None,
               defer_norm: bool = False):
    """x is an array or (time-major) a `PendingNorm`. With `defer_norm`
    (needs `can_fold_norm`) the output is a `PendingNorm` for the next layer."""
    train = training_flag(train, self.norm, self.dropout, "RecurrentLayer")
    if defer_norm and not can_fold_norm(self.norm, self.norm_position, self.dropout):
      raise ValueError("defer_norm needs norm='sequence', norm_position='post' and no dropout")
    if self.bidirectional and self.reverse:
      raise ValueError("RecurrentLayer: reverse applies to one direction; a bidirectional "
                       "layer runs both")
    x, x_scale, x_shift = x if isinstance(x, PendingNorm) else (x, None, None)
    if not self.time_major:
      x = jnp.swapaxes(x, 0, 1)
    lengths = check_lengths(seq_lengths, x.shape[:2], "RecurrentLayer")
    valid = None if lengths is None else recurrences.step_mask(lengths, x.shape[0])
    by_lengths = {} if lengths is None else {"lengths": lengths}
    directions = ("forward", "backward") if self.bidirectional else ("forward",)
    pre_norm = self.norm != "none" and self.norm_position == "pre"
    # Batch norm over the sequence after the layer: its statistics are summed
    # inside the time loop where the cell can (no pass over h after it).
    loop_sums = train and self.norm == "sequence" and self.norm_position == "post"
    outputs, finals, sums = [], [], []
    for i, direction in enumerate(directions):
      cell = self.cell.copy(name=direction)
      reverse = self.reverse or direction == "backward"
      z, bias = cell.project(flip_sequences(x, lengths) if reverse else x, x_scale, x_shift)
      if pre_norm:
        z, bias = batch_norm(self.norm, f"{direction}_norm")(z + bias, train=train,
                                                             valid=valid), None
      state = None if initial_carry is None else _direction_carry(
          initial_carry, i, directions, cell.initial_state(z))
      h, final, direction_sums = cell.recur(z, state, bias, moments=loop_sums, **by_lengths)
      keep_order = self.keep_order or direction == "backward"
      outputs.append(flip_sequences(h, lengths) if reverse and keep_order else h)
      finals.append(final)
      sums.append(direction_sums)
    h = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
    sums = tuple(map(jnp.concatenate, zip(*sums))) if all(sums) else ()
    if self.norm != "none" and self.norm_position == "post":
      norm = batch_norm(self.norm, "norm")
      kwargs = {"sums": sums} if sums else {}  # Only a sequence norm takes them.
      if defer_norm:
        pending = PendingNorm(h, *norm.affine(h, train=train, valid=valid, **kwargs))
        return (tuple(finals), pending) if self.return_carry else pending
      h = recurrences.zero_padding(norm(h, train=train, valid=valid, **kwargs), lengths)
    if self.dropout > 0:
      h = nn.Dropout(self.dropout, broadcast_dims=(0,))(h, deterministic=not train)
    if not self.time_major:
      h = jnp.swapaxes(h, 0, 1)
    return (tuple(finals), h) if self.return_carry else h


def _direction_carry(initial_carry, index: int, directions: tuple, like):
  """initial_carry[index], checked against the structure and shapes of the
  cell's own zero state `like`."""
  want = jax.tree.map(lambda a: a.shape, like)
  if not isinstance(initial_carry, (tuple, list)) or len(initial_carry) != len(directions):
    raise ValueError(f"RecurrentLayer: initial_carry must be a tuple with one carry per "
                     f"direction {directions}, each shaped like {want}")
  carry = initial_carry[index]
  if jax.tree.structure(carry) != jax.tree.structure(like) or jax.tree.map(
      lambda a: tuple(a.shape), carry) != want:
    raise ValueError(f"RecurrentLayer: initial_carry[{index}] ({directions[index]}) must be "
                     f"shaped like {want}, got {jax.tree.map(lambda a: tuple(a.shape), carry)}")
  return carry


def constrain_directions(cell: RecurrentCellBase, params: dict) -> dict:
  """`cell.constrain` applied to the parameters of each direction of a
  RecurrentLayer (`params` is the layer's subtree)."""
  return {k: cell.constrain(v) if k in ("forward", "backward") else v
          for k, v in params.items()}
