"""Losses and metrics for each kind of task.

`batch_metrics` returns sums and a count, so that evaluation can add batches
(and padded examples, weighted 0 by `batch["mask"]`) before dividing.
"""

import math

import jax
import jax.numpy as jnp
import optax

TASKS = ("regression", "classification", "language_model")


def _weights(batch, shape):
  """float32 weights of `shape` ([B] or [B, T]): batch["mask"] over examples
  (0 for padding rows) times, for per-step shapes with batch["lengths"], 1 at
  the valid steps of each sequence and 0 past its length."""
  w = jnp.ones(shape, jnp.float32)
  mask = batch.get("mask")
  if mask is not None:
    w = w * mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)).astype(jnp.float32)
  lengths = batch.get("lengths")
  if lengths is not None and len(shape) > 1:
    steps = jnp.arange(shape[1])
    w = w * (steps[None, :] < jnp.asarray(lengths)[:, None]).astype(jnp.float32).reshape(
        (shape[0], shape[1]) + (1,) * (len(shape) - 2))
  return w


def _squared_error(outputs, targets):
  """Per example: outputs[B, 1] against targets[B], or the mean over K of
  outputs[B, K] against targets[B, K] (likewise with a time axis)."""
  if targets.ndim == outputs.ndim:
    return jnp.mean((outputs - targets) ** 2, axis=-1)
  return (outputs[..., 0] - targets) ** 2


def batch_metrics(task: str, outputs: jax.Array, batch: dict) -> dict[str, jax.Array]:
  """Summed metrics of one batch, plus "count" (examples, or tokens for LMs)."""
  targets = batch["targets"]
  if task == "regression":
    err = _squared_error(outputs.astype(jnp.float32), targets)
    w = _weights(batch, err.shape)
    return {"loss": jnp.sum(w * err), "mse": jnp.sum(w * err), "count": w.sum()}
  if task in ("classification", "language_model"):
    w = _weights(batch, targets.shape)
    nll = optax.softmax_cross_entropy_with_integer_labels(
        outputs.astype(jnp.float32), targets)
    correct = (jnp.argmax(outputs, -1) == targets).astype(jnp.float32)
    return {"loss": jnp.sum(w * nll), "accuracy": jnp.sum(w * correct),
            "count": w.sum()}
  raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


def derived_metrics(task: str, mean_loss: float) -> dict[str, float]:
  """Language models: bits per token and perplexity from the mean loss in nats."""
  if task != "language_model":
    return {}
  return {"bpc": mean_loss / math.log(2.0),
          "perplexity": math.exp(min(mean_loss, 50.0))}


def mean_metrics(task: str, sums: dict) -> dict[str, float]:
  """Divide summed metrics by their count and add derived ones (BPC, perplexity)."""
  count = max(float(sums["count"]), 1.0)
  means = {k: float(v) / count for k, v in sums.items() if k != "count"}
  means.update(derived_metrics(task, means["loss"]))
  return means
