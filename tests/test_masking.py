"""Variable lengths: a padded batch with seq_lengths against each sequence
run alone, unpadded, through the same layers, for every cell."""

from types import SimpleNamespace

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

from irnn_jax import cells, parallel, recurrences, tasks, train
from irnn_jax.layers import RecurrentLayer, flip_sequences
from irnn_jax.models import RecurrentStack, SequenceModel

LENGTHS = (9, 4, 1, 6)
STEPS, FEATURES = 9, 3


def _cell(kind):
  own = {"irnn": dict(identity_scale=0.9), "indrnn": dict(u_low=-1.0, u_high=1.0)}
  return cells.get(kind)(**{"features": 5, "input_std": 0.5, **own.get(kind, {})})


def _padded(seed=0, garbage=True):
  """x[B, T, D] whose steps past each length are noise (they must not matter)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(len(LENGTHS), STEPS, FEATURES)).astype(np.float32)
  valid = np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]
  x = np.where(valid[..., None], x, 100.0 * x if garbage else 0.0).astype(np.float32)
  return x, jnp.array(LENGTHS, jnp.int32)


def _weights(shape, seed=1):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _loss(h, weights):
  return jnp.sum(jnp.sin(h) * weights)


def _check_against_alone(module, variables, x, lengths, carry=True, **kwargs):
  """Outputs (zero past each length), final states, the loss and its gradient
  of the padded batch against the sum over sequences run alone."""
  weights = _weights(module.apply(variables, x, seq_lengths=lengths, **kwargs)[1].shape)

  def padded_loss(params):
    finals, h = module.apply({**variables, "params": params}, x, seq_lengths=lengths, **kwargs)
    return _loss(h, weights), (h, finals)

  (loss, (h, finals)), grads = jax.jit(jax.value_and_grad(padded_loss, has_aux=True))(
      variables["params"])
  h = np.asarray(h)
  total, total_grads = 0.0, None
  for b, n in enumerate(LENGTHS):
    def alone_loss(params, b=b, n=n):
      finals, h = module.apply({**variables, "params": params}, x[b:b + 1, :n], **kwargs)
      return _loss(h[0], weights[b, :n]), (h, finals)

    (value, (h_b, finals_b)), g = jax.jit(jax.value_and_grad(alone_loss, has_aux=True))(
        variables["params"])
    np.testing.assert_allclose(h[b, :n], np.asarray(h_b[0]), rtol=2e-5, atol=2e-6)
    assert np.all(h[b, n:] == 0.0), "padded outputs must be zero"
    if carry:
      for final, final_b in zip(jax.tree.leaves(finals), jax.tree.leaves(finals_b)):
        np.testing.assert_allclose(np.asarray(final)[b], np.asarray(final_b)[0],
                                   rtol=2e-5, atol=2e-6)
    total += float(value)
    total_grads = g if total_grads is None else jax.tree.map(jnp.add, total_grads, g)
  np.testing.assert_allclose(float(loss), total, rtol=2e-5, atol=2e-5)
  flat, _ = ravel_pytree(grads)
  flat_alone, _ = ravel_pytree(total_grads)
  assert np.abs(np.asarray(flat)).max() > 0
  np.testing.assert_allclose(np.asarray(flat), np.asarray(flat_alone), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("kind", cells.names())
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_layer_matches_each_sequence_alone(kind, bidirectional):
  x, lengths = _padded()
  layer = RecurrentLayer(_cell(kind), bidirectional=bidirectional, return_carry=True)
  variables = layer.init(jax.random.PRNGKey(0), x)
  _check_against_alone(layer, variables, x, lengths)


@pytest.mark.parametrize("kind", ["indrnn", "lstm"])
def test_unrolled_loops_honour_lengths(kind):
  """unroll > 1 runs other loops (a lax.scan; for LSTM one JAX differentiates)."""
  x, lengths = _padded()
  cell = _cell(kind).clone(unroll=3)
  layer = RecurrentLayer(cell, return_carry=True)
  _check_against_alone(layer, layer.init(jax.random.PRNGKey(0), x), x, lengths)


@pytest.mark.parametrize("kind", ["indrnn", "irnn", "gru"])
def test_reverse_runs_each_sequence_backwards_within_its_length(kind):
  """reverse: outputs[b, t] is the state after reading steps n-1 .. n-1-t."""
  x, lengths = _padded()
  for keep_order in (False, True):
    layer = RecurrentLayer(_cell(kind), reverse=True, keep_order=keep_order, return_carry=True)
    variables = layer.init(jax.random.PRNGKey(0), x)
    _check_against_alone(layer, variables, x, lengths)
    forward = RecurrentLayer(_cell(kind))
    _, h = layer.apply(variables, x, seq_lengths=lengths)
    for b, n in enumerate(LENGTHS):
      h_b = forward.apply(variables, x[b:b + 1, :n][:, ::-1])[0]
      expected = h_b[::-1] if keep_order else h_b
      np.testing.assert_allclose(np.asarray(h)[b, :n], np.asarray(expected), rtol=2e-5,
                                 atol=2e-6)


def _trained_batch_stats(module, variables, x, lengths):
  """Running statistics after a few training batches, so that evaluation
  normalises by something other than (0, 1)."""
  stats = variables["batch_stats"]
  for seed in range(3):
    _, updated = module.apply({**variables, "batch_stats": stats}, _padded(seed + 5)[0],
                              seq_lengths=lengths, train=True, mutable=["batch_stats"])
    stats = updated["batch_stats"]
  return {**variables, "batch_stats": stats}


@pytest.mark.parametrize("norm, position", [("sequence", "post"), ("sequence", "pre"),
                                            ("per_step", "post"), ("per_step", "pre")])
@pytest.mark.parametrize("kind", ["indrnn", "lstm"])
def test_batch_norm_in_evaluation_matches_each_sequence_alone(norm, position, kind):
  x, lengths = _padded()
  layer = RecurrentLayer(_cell(kind), norm=norm, norm_position=position, bidirectional=True,
                         return_carry=True)
  variables = _trained_batch_stats(layer, layer.init(jax.random.PRNGKey(0), x, train=False),
                                   x, lengths)
  _check_against_alone(layer, variables, x, lengths, train=False)


def _valid_values(h, lengths):
  """The valid steps of h[B, T, F] as rows [sum(lengths), F] (float64)."""
  return np.concatenate([np.asarray(h, np.float64)[b, :n] for b, n in enumerate(lengths)])


@pytest.mark.parametrize("kind", ["indrnn", "irnn", "lstm"])
def test_batch_statistics_count_only_valid_steps(kind):
  """Post sequence norm in training (IndRNN and IRNN sum inside the loop):
  the normalised output and the running statistics are those of the valid
  steps of h, and padding of any content or length changes nothing."""
  x, lengths = _padded()
  layer = RecurrentLayer(_cell(kind), norm="sequence", norm_position="post")
  plain = RecurrentLayer(_cell(kind))
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  y, updated = layer.apply(variables, x, seq_lengths=lengths, train=True,
                           mutable=["batch_stats"])
  h = _valid_values(plain.apply({"params": variables["params"]}, x, seq_lengths=lengths),
                    LENGTHS)
  mean, var = h.mean(axis=0), h.var(axis=0)
  stats = updated["batch_stats"]["norm"]
  np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * h.var(axis=0, ddof=1), rtol=1e-4)
  np.testing.assert_allclose(_valid_values(y, LENGTHS), (h - mean) / np.sqrt(var + 1e-5),
                             rtol=1e-3, atol=1e-4)
  assert np.all(np.asarray(y)[np.arange(STEPS)[None] >= np.array(LENGTHS)[:, None]] == 0)
  longer = np.concatenate([x, np.full((len(LENGTHS), 4, FEATURES), 7.0, np.float32)], axis=1)
  y_longer, _ = layer.apply(variables, longer, seq_lengths=lengths, train=True,
                            mutable=["batch_stats"])
  np.testing.assert_allclose(np.asarray(y_longer)[:, :STEPS], np.asarray(y), rtol=1e-5,
                             atol=1e-6)


def test_per_step_statistics_skip_steps_no_sequence_reaches():
  x, _ = _padded()
  lengths = jnp.array([3, 2, 1, 3], jnp.int32)
  layer = RecurrentLayer(_cell("indrnn"), norm="per_step", norm_position="post")
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  _, updated = layer.apply(variables, x, seq_lengths=lengths, train=True,
                           mutable=["batch_stats"])
  stats = updated["batch_stats"]["norm"]
  h = np.asarray(RecurrentLayer(_cell("indrnn")).apply(
      {"params": variables["params"]}, x, seq_lengths=lengths), np.float64)
  np.testing.assert_allclose(stats["mean"][1], 0.1 * h[[0, 1, 3], 1].mean(axis=0), rtol=1e-4,
                             atol=1e-7)  # Step 1: the three rows of length >= 2.
  np.testing.assert_array_equal(stats["mean"][3:], 0.0)  # Steps 3..8: no row, no change.
  np.testing.assert_array_equal(stats["var"][3:], 1.0)


def test_precise_per_step_statistics_weight_each_batch_by_its_rows_at_each_step():
  """train.precise_batch_stats over two padded batches: at each step the
  row-weighted mean of the batches' own statistics, counting a batch only
  where two or more of its rows reach the step; steps no batch has two rows
  at keep their running statistics."""
  x, _ = _padded()
  batches = [{"inputs": x, "lengths": np.array([9, 4, 1, 6], np.int32)},
             {"inputs": _padded(3)[0], "lengths": np.array([3, 2, 2, 5], np.int32)}]
  layer = RecurrentLayer(_cell("indrnn"), norm="per_step", norm_position="post")
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  running = {"norm": {"mean": jnp.full((STEPS, 5), 0.5), "var": jnp.full((STEPS, 5), 2.0)}}
  state = SimpleNamespace(params=variables["params"], batch_stats=running)
  mesh = parallel.data_mesh()
  stats = train.precise_batch_stats(train.make_batch_stats_step(layer, mesh), state, batches,
                                    mesh)["norm"]
  plain = RecurrentLayer(_cell("indrnn"))
  sums = np.zeros((STEPS, 5)), np.zeros((STEPS, 5)), np.zeros((STEPS, 1))
  for batch in batches:
    h = np.asarray(plain.apply({"params": variables["params"]}, batch["inputs"],
                               seq_lengths=batch["lengths"]), np.float64)
    for t in range(STEPS):
      rows = h[batch["lengths"] > t, t]
      if len(rows) > 1:
        sums[0][t] += len(rows) * rows.mean(0)
        sums[1][t] += len(rows) * rows.var(0, ddof=1)
        sums[2][t] += len(rows)
  reached = sums[2][:, 0] > 0  # Steps 0..5 (step 5: two rows of the second batch).
  np.testing.assert_array_equal(reached, np.arange(STEPS) < 6)
  rows = sums[2][reached]
  np.testing.assert_allclose(stats["mean"][reached], sums[0][reached] / rows, rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(stats["var"][reached], sums[1][reached] / rows, rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_array_equal(stats["mean"][~reached], 0.5)
  np.testing.assert_array_equal(stats["var"][~reached], 2.0)


def test_a_step_one_row_reaches_leaves_the_running_statistics():
  x, _ = _padded()
  layer = RecurrentLayer(_cell("indrnn"), norm="per_step", norm_position="post")
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  _, updated = layer.apply(variables, x, seq_lengths=jnp.array([9, 4, 1, 6]), train=True,
                           mutable=["batch_stats"])
  stats = updated["batch_stats"]["norm"]
  np.testing.assert_array_equal(stats["var"][6:], 1.0)  # Steps 6..8: only the row of 9.
  assert np.all(np.asarray(stats["var"][:6]) != 1.0)


@pytest.mark.parametrize("connection", ["plain", "residual", "dense"])
@pytest.mark.parametrize("norm", ["none", "sequence"])
def test_padded_stack_matches_each_sequence_alone(connection, norm):
  """Stacks of three layers; with batch norm in evaluation (statistics from
  training batches), and for a plain stack each norm folded into the next
  layer's kernel."""
  x, lengths = _padded()
  stack = RecurrentStack((_cell("indrnn"), _cell("irnn"), _cell("gru")), connection=connection,
                         block_size=1, norm=norm, bidirectional=connection == "plain",
                         return_carry=True)
  variables = stack.init(jax.random.PRNGKey(0), x, train=False)
  if norm != "none":
    variables = _trained_batch_stats(stack, variables, x, lengths)
  _check_against_alone(stack, variables, x, lengths, train=False)


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("norm", ["none", "sequence"])
def test_classifier_reads_each_sequence_at_its_own_end(pooling, norm):
  """The model's logits for a padded batch are those of each sequence alone:
  read at its last valid step, or the mean over its valid steps."""
  x, lengths = _padded()
  stack = RecurrentStack((_cell("indrnn"),) * 2, norm=norm, return_carry=True, time_major=True)
  model = SequenceModel(stack, num_outputs=3, readout="last", pooling=pooling)
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  if norm != "none":
    variables = _trained_batch_stats(model, variables, x, lengths)
  logits = np.asarray(model.apply(variables, x, seq_lengths=lengths, train=False)[0])
  for b, n in enumerate(LENGTHS):
    alone = model.apply(variables, x[b:b + 1, :n], train=False)[0]
    np.testing.assert_allclose(logits[b], np.asarray(alone[0]), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("connection", ["plain", "dense"])
def test_bidirectional_last_pooling_reads_each_direction_where_it_ends(connection):
  """Forward features at each sequence's last valid step, backward ones at
  step 0 (for dense stacks, in every [forward | backward] block)."""
  x, lengths = _padded()
  stack = RecurrentStack((_cell("indrnn"),) * 3, connection=connection, block_size=1,
                         bidirectional=True, return_carry=True, time_major=True)
  model = SequenceModel(stack, num_outputs=3, readout="last", pooling="last")
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  logits = model.apply(variables, x, seq_lengths=lengths, train=False)[0]
  h = np.asarray(stack.apply({"params": variables["params"]["stack"]}, x.swapaxes(0, 1),
                             seq_lengths=lengths)[1])  # [T, B, F]
  blocks = h.shape[-1] // 10  # Blocks of [forward 5 | backward 5].
  features = np.stack([np.concatenate([np.concatenate([h[n - 1, b, 10 * k:10 * k + 5],
                                                       h[0, b, 10 * k + 5:10 * k + 10]])
                                       for k in range(blocks)])
                       for b, n in enumerate(LENGTHS)])
  head = variables["params"]["head"]
  np.testing.assert_allclose(logits, features @ head["kernel"] + head["bias"], rtol=1e-5,
                             atol=1e-6)


def test_per_step_losses_ignore_padding():
  """A per-step readout's loss counts only valid steps (language models)."""
  rng = np.random.default_rng(0)
  lengths = np.array([5, 2, 3], np.int32)
  outputs = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
  targets = rng.integers(0, 4, size=(3, 5)).astype(np.int32)
  sums = tasks.batch_metrics("language_model", outputs,
                             {"targets": targets, "lengths": lengths})
  logp = np.asarray(jax.nn.log_softmax(outputs))
  nll = [-logp[b, t, targets[b, t]] for b in range(3) for t in range(lengths[b])]
  assert float(sums["count"]) == lengths.sum()
  np.testing.assert_allclose(float(sums["loss"]), np.sum(nll), rtol=1e-5)


def test_flip_sequences_reverses_within_each_length():
  x = jnp.arange(12).reshape(4, 3)[..., None]  # x[T=4, B=3, 1], value 3t + b.
  flipped = np.asarray(flip_sequences(x, jnp.array([4, 2, 1])))[..., 0]
  np.testing.assert_array_equal(flipped[:, 0], [9, 6, 3, 0])
  np.testing.assert_array_equal(flipped[:, 1], [4, 1, 7, 10])  # Padding stays in place.
  np.testing.assert_array_equal(flipped[:, 2], [2, 5, 8, 11])


@pytest.mark.parametrize("recurrence", ["elementwise", "dense"])
def test_hand_written_backward_with_lengths_matches_autodiff(recurrence):
  """Including the batch-norm sums of the valid steps, in float64."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(STEPS, 4, 5)))
    weights = jnp.asarray(rng.normal(size=(5,) if recurrence == "elementwise" else (5, 5))) * 0.6
    h0 = jnp.asarray(rng.normal(size=(4, 5)))
    lengths = jnp.array(LENGTHS)
    fused = getattr(recurrences, f"{recurrence}_scan")
    reference = getattr(recurrences, f"{recurrence}_scan_autodiff")

    def loss(fn, z, weights, h0):
      hs, final, sums = fn(z, weights, h0, "tanh", 1, None, True, lengths)
      return (jnp.sum(jnp.sin(hs) * jnp.arange(hs.size).reshape(hs.shape))
              + jnp.sum(final ** 2) + jnp.sum(sums[0] * 0.3) + jnp.sum(sums[1] * 0.7))

    got = jax.grad(lambda *a: loss(fused, *a), argnums=(0, 1, 2))(z, weights, h0)
    want = jax.grad(lambda *a: loss(reference, *a), argnums=(0, 1, 2))(z, weights, h0)
    for g, w in zip(got, want):
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)
    sums = fused(z, weights, h0, "tanh", 1, None, True, lengths)[2]
    hs = recurrences.dense_scan_autodiff(z, weights if recurrence == "dense"
                                         else jnp.diag(weights), h0, "tanh")[0]
    valid = np.concatenate([np.asarray(hs)[:n, b] for b, n in enumerate(LENGTHS)])
    np.testing.assert_allclose(np.asarray(sums[0]), valid.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(sums[1]),
                               np.square(valid - valid.mean(axis=0)).sum(axis=0), rtol=1e-10)


def test_lengths_outside_one_to_t_are_refused_and_lists_accepted():
  x, _ = _padded()
  layer = RecurrentLayer(_cell("indrnn"), bidirectional=True)
  variables = layer.init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(layer.apply(variables, x, seq_lengths=list(LENGTHS)),
                                layer.apply(variables, x, seq_lengths=jnp.array(LENGTHS)))
  for bad, index in (([9, 4, 0, 6], 2), ([9, 10, 1, 6], 1)):
    with pytest.raises(ValueError, match=rf"RecurrentLayer: seq_lengths\[{index}\] = "
                       rf"{bad[index]}; each length must be in \[1, {STEPS}\]"):
      layer.apply(variables, x, seq_lengths=np.array(bad))
  with pytest.raises(ValueError, match=r"integers of shape \(4,\)"):
    layer.apply(variables, x, seq_lengths=np.ones(4, np.float32))


def test_a_carry_of_the_wrong_structure_is_refused_with_the_expected_shapes():
  x, lengths = _padded()
  layer = RecurrentLayer(_cell("lstm"), return_carry=True)
  variables = layer.init(jax.random.PRNGKey(0), x)
  carry, h = layer.apply(variables, x, seq_lengths=lengths)
  assert len(carry) == 1 and len(carry[0]) == 2  # (forward,), the LSTM's (h, c).
  again = layer.apply(variables, x[:, :4], carry, seq_lengths=jnp.minimum(lengths, 4))[1]
  assert again.shape == (4, 4, 5)
  with pytest.raises(ValueError, match=r"one carry per direction \('forward',\)"):
    layer.apply(variables, x, carry[0])  # flax's nn.RNN carry, without the direction tuple.
  with pytest.raises(ValueError, match=r"initial_carry\[0\] \(forward\) must be shaped like "
                     r"\(\(4, 5\), \(4, 5\)\), got \(4, 5\)"):
    layer.apply(variables, x, (carry[0][0],))
