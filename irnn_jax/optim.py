"""Optimizer, learning-rate schedule and weight-decay mask."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

DECAYED_PARAMS = ("kernel", "recurrent_kernel", "embedding")


def _leaf_name(path) -> str:
  last = path[-1]
  return str(getattr(last, "key", getattr(last, "name", last)))


def weight_decay_mask(params):
  """True for weight matrices (input, recurrent, embedding, head kernels);
  False for IndRNN `u`, biases and norm scales."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: _leaf_name(path) in DECAYED_PARAMS, params)


def _core(opt: ml_collections.ConfigDict, learning_rate):
  if opt.name == "sgd":
    return optax.sgd(learning_rate, momentum=opt.momentum or None,
                     nesterov=opt.nesterov)
  if opt.name == "adam":
    return optax.adam(learning_rate, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  if opt.name == "rmsprop":
    return optax.rmsprop(learning_rate, decay=opt.rmsprop_decay, eps=opt.eps,
                         eps_in_sqrt=opt.rmsprop_eps_in_sqrt,
                         momentum=opt.momentum or None, nesterov=opt.nesterov)
  raise ValueError(f"config.optimizer.name: unknown optimizer {opt.name!r}")


def make_optimizer(opt: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """clip (elementwise, global norm) -> L2 weight decay (masked) -> optimizer.

  The learning rate is an injected hyperparameter, set by the train step from
  the schedule every step (`set_learning_rate`).
  """

  def chain(learning_rate):
    parts = []
    if opt.clip_value > 0:
      parts.append(optax.clip(opt.clip_value))
    if opt.clip_global_norm > 0:
      parts.append(optax.clip_by_global_norm(opt.clip_global_norm))
    if opt.weight_decay > 0:
      parts.append(optax.add_decayed_weights(opt.weight_decay, weight_decay_mask))
    parts.append(_core(opt, learning_rate))
    return optax.chain(*parts)

  return optax.inject_hyperparams(chain)(learning_rate=opt.learning_rate)


def set_learning_rate(opt_state, learning_rate):
  hyperparams = dict(opt_state.hyperparams, learning_rate=learning_rate)
  return opt_state._replace(hyperparams=hyperparams)


def base_learning_rate(config: ml_collections.ConfigDict, step):
  """Learning rate at `step` before the plateau factor (jit-friendly)."""
  s, lr = config.schedule, config.optimizer.learning_rate
  step = jnp.asarray(step, jnp.float32)
  rate = jnp.asarray(lr, jnp.float32)
  if s.name == "step":
    rate = rate * s.decay_factor ** jnp.floor(step / s.decay_every)
  if s.warmup_steps > 0:
    rate = rate * jnp.minimum(1.0, (step + 1) / s.warmup_steps)
  return rate


def plateau_update(config: ml_collections.ConfigDict, value: float, best: float,
                   count: int, scale: float) -> tuple[float, int, float]:
  """One reduce-on-plateau decision after an evaluation (lower is better).

  Returns the new (best, evaluations without improvement, learning-rate scale).
  """
  s = config.schedule
  if value < best:
    return value, 0, scale
  count += 1
  if count >= s.plateau_patience:
    return best, 0, max(scale * s.plateau_factor, s.plateau_min_scale)
  return best, count, scale
