"""A plain `lax.scan` IndRNN: the baseline that irnn_jax's IndRNN cell replaces.

Each layer is one `lax.scan` whose body does both the input product and the
recurrence, h_t = relu(x_t @ W + b + u * h_{t-1}), and JAX autodiff
differentiates it: no projection hoisted out of the loop, no custom VJP.
As in the config: batch norm over time and batch after each layer (batch
statistics only; the running averages are left out, a few ops on [H]), a
Dense head on the last step, the config's optimizer, |u| bounded.
"""

import jax
import jax.numpy as jnp
import ml_collections

from irnn_jax import models, optim, tasks


def init_params(key, config: ml_collections.ConfigDict, input_dim: int,
                num_outputs: int) -> dict:
  m = config.model
  u_high = min(models.layer_cells(m, config.data.seq_len, 1)[0].u_bound, 1.0)
  params, d = {}, input_dim
  for i in range(m.num_layers):
    key, k_w, k_u = jax.random.split(key, 3)
    params[f"layer_{i}"] = {
        "kernel": m.input_std * jax.random.normal(k_w, (d, m.hidden_size)),
        "bias": jnp.zeros(m.hidden_size),
        "u": jax.random.uniform(k_u, (m.hidden_size,), maxval=u_high),
        "norm": {"scale": jnp.ones(m.hidden_size), "bias": jnp.zeros(m.hidden_size)},
    }
    d = m.hidden_size
  key, k_head = jax.random.split(key)
  params["head"] = {"kernel": 0.1 * jax.random.normal(k_head, (d, num_outputs)),
                    "bias": jnp.zeros(num_outputs)}
  return params


def apply(params: dict, inputs, num_layers: int, norm: bool, unroll: int = 1):
  """inputs[B, T, D] -> outputs[B, num_outputs]."""
  h = jnp.swapaxes(inputs, 0, 1)
  for i in range(num_layers):
    p = params[f"layer_{i}"]

    def step(prev, x_t, p=p):
      new = jax.nn.relu(x_t @ p["kernel"] + p["bias"] + p["u"] * prev)
      return new, new

    zeros = jnp.zeros((h.shape[1], p["u"].shape[0]), h.dtype)
    _, h = jax.lax.scan(step, zeros, h, unroll=unroll)
    if norm:
      mean, var = h.mean(axis=(0, 1)), h.var(axis=(0, 1))
      h = (h - mean) / jnp.sqrt(var + 1e-5) * p["norm"]["scale"] + p["norm"]["bias"]
  return h[-1] @ params["head"]["kernel"] + params["head"]["bias"]


def make(config: ml_collections.ConfigDict, task: str, input_dim: int,
         num_outputs: int):
  """(initial state, jitted donating step (state, batch) -> state)."""
  m = config.model
  tx = optim.make_optimizer(config.optimizer)
  cell = models.layer_cells(m, config.data.seq_len, 1)[0]  # Its constrain bounds u.
  norm = m.norm != "none"

  def train_step(state, batch):
    params, opt_state = state

    def loss_fn(p):
      outputs = apply(p, batch["inputs"], m.num_layers, norm, m.unroll)
      sums = tasks.batch_metrics(task, outputs, batch)
      return sums["loss"] / sums["count"]

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(jnp.add, params, updates)
    params = {k: cell.constrain(v) if k.startswith("layer_") else v for k, v in params.items()}
    return params, opt_state

  params = init_params(jax.random.PRNGKey(config.seed), config, input_dim, num_outputs)
  return (params, tx.init(params)), jax.jit(train_step, donate_argnums=0)
