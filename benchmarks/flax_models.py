"""flax's stock recurrent cells as benchmark peers: `flax.linen.RNN` over each.

A peer is the case's model built from flax's own parts: `nn.RNN(cell)` over
x[B, T, D], a Dense head on the last step, the case config's optimizer
(`irnn_jax.optim`, so clipping and Adam match), one jitted training step with
the state donated. On several devices the batch is split over the data mesh
by jit's shardings (XLA partitions the step), the state replicated.

Cells, the nearest flax has to each irnn_jax cell:
  irnn:  SimpleCell(relu), recurrent kernel the identity, input kernel N(0, 0.001);
  rnn:   SimpleCell(tanh);
  lstm:  LSTMCell and OptimizedLSTMCell (gate products fused);
  gru:   GRUCell.
IndRNN has none.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from irnn_jax import initializers, optim, parallel, tasks

PEERS = {"irnn": ("SimpleCell",), "rnn": ("SimpleCell",),
         "lstm": ("LSTMCell", "OptimizedLSTMCell"), "gru": ("GRUCell",)}


def make_cell(cell: str, peer: str, hidden: int) -> nn.RNNCellBase:
  if cell == "irnn":
    return nn.SimpleCell(hidden, activation_fn=nn.relu,
                         kernel_init=nn.initializers.normal(0.001),
                         recurrent_kernel_init=initializers.scaled_identity(1.0))
  if cell == "rnn":
    return nn.SimpleCell(hidden)
  if peer not in PEERS.get(cell, ()):
    raise ValueError(f"no flax peer {peer!r} for the {cell!r} cell; peers: {PEERS}")
  return getattr(nn, peer)(hidden)


class Classifier(nn.Module):
  """nn.RNN over x[B, T, D], then a Dense head on the last step."""
  cell: nn.RNNCellBase
  num_outputs: int

  @nn.compact
  def __call__(self, x):
    h = nn.RNN(self.cell)(x)
    return nn.Dense(self.num_outputs)(h[:, -1])


def make(config: ml_collections.ConfigDict, task: str, cell: str, peer: str,
         num_outputs: int, inputs, mesh):
  """(state on the mesh, jitted donating step (state, batch) -> state)."""
  if config.model.num_layers != 1:
    raise ValueError("the flax peers are one layer")
  model = Classifier(make_cell(cell, peer, config.model.hidden_size), num_outputs)
  tx = optim.make_optimizer(config.optimizer)

  def train_step(state, batch):
    params, opt_state = state

    def loss_fn(p):
      sums = tasks.batch_metrics(task, model.apply({"params": p}, batch["inputs"]), batch)
      return sums["loss"] / sums["count"]

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return jax.tree.map(jnp.add, params, updates), opt_state

  params = model.init(jax.random.PRNGKey(config.seed), inputs[:1])["params"]
  same, rows = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  state = jax.device_put((params, tx.init(params)), same)
  step = jax.jit(train_step, donate_argnums=0, in_shardings=(same, rows), out_shardings=same)
  return state, step
