"""Sampling text from a trained language model, one token at a time.

The model runs as in training: over windows of T = seq_len tokens, the final
states of one window the initial states of the next. Inside a window the token
at position t + 1 is drawn from the output at position t of the model applied
to the whole window, whose later positions hold padding. Every layer is causal
at evaluation (the recurrences; batch norm uses running statistics, per time
step for norm="per_step"; no dropout), so outputs up to t ignore the padding,
and position t is normalised with the statistics of step t, as in training.
(Feeding [1, 1] inputs instead would apply the step-0 statistics at every
step.) The price: T model steps per sampled token, under one compilation.
"""

import jax
import numpy as np


def pick(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
  """A token from logits[V]: softmax(logits / temperature); greedy if <= 0."""
  if temperature <= 0:
    return int(np.argmax(logits))
  z = logits.astype(np.float64) / temperature
  p = np.exp(z - z.max())
  return int(rng.choice(len(p), p=p / p.sum()))


def generate(model, variables: dict, seq_len: int, context: list[int], length: int,
             temperature: float = 1.0, seed: int = 0) -> list[int]:
  """`length` token ids sampled after `context` (at least one id)."""
  if not context:
    raise ValueError("generation needs at least one context token")
  if model.stack.bidirectional:
    raise ValueError("a bidirectional model sees the future; it cannot generate")
  apply = jax.jit(lambda v, x, s: model.apply(v, x, s, train=False))
  rng = np.random.default_rng(seed)
  ids, start, states = list(context), 0, None

  def window(first: int) -> np.ndarray:
    tokens = ids[first:first + seq_len]
    return np.array([tokens + [0] * (seq_len - len(tokens))], np.int32)

  while len(ids) < len(context) + length:
    while len(ids) - start > seq_len:  # The next token starts a new window.
      _, states = apply(variables, window(start), states)
      start += seq_len
    logits, _ = apply(variables, window(start), states)
    ids.append(pick(np.asarray(logits[0, len(ids) - 1 - start]), temperature, rng))
  return ids[len(context):]
