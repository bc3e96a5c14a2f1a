"""Where the IndRNN 6 x 128 sequential-MNIST training step spends its time.

  python -m benchmarks.step_breakdown [--cpu_devices=N]

Times the jitted training step exactly as `benchmarks.throughput` builds it;
the same step with each batch norm written out by its layer instead of folded
into the next layer's kernel; the step with one part taken out (batch norm;
the recurrence loop, replaced by the elementwise relu(z + b + u/2)); then one
layer's scan alone at several unroll factors; and the IRNN 1 x 100 step with
its hand-written backward and with JAX's own. Best of 3 repeats; run it on an
idle machine. glibc malloc keeps freed memory, as in training.
"""

import argparse
import time
from unittest import mock

import jax
import jax.numpy as jnp

from benchmarks import throughput
from irnn_jax import host_memory, optim, parallel, recurrences, run, train

CASE = throughput.Case("indrnn", "smnist", 784, 32, 6)
IRNN_CASE = throughput.Case("irnn", "smnist", 784, 128, 1, hidden=100)


def best_ms(run, repeats: int = 3, calls: int = 8) -> float:
  """Best mean time of `calls` calls of run(), in ms, after one warm-up call."""
  jax.block_until_ready(run())
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      out = run()
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / calls)
  return best * 1e3


def step_ms(config, fold_norm: bool = True, case: throughput.Case = CASE) -> float:
  """The training step on the data mesh of all devices (--cpu_devices)."""
  host_batch = throughput.make_batch(case)
  task = throughput.task_shape(case.task)[0]
  model = run.build_model(config, throughput.case_spec(case, host_batch["inputs"]))
  model = model.clone(stack=model.stack.clone(fold_norm=fold_norm))
  tx = optim.make_optimizer(config.optimizer)
  mesh = parallel.data_mesh()
  state = parallel.replicate(run.initial_state(config, model, tx, host_batch["inputs"]), mesh)
  step = train.make_train_step(config, model, tx, task, mesh=mesh)
  batch = parallel.shard_batch(host_batch, mesh)
  compiled = step.lower(state, batch).compile()
  holder = [state]

  def advance():
    holder[0] = compiled(holder[0], batch)[0]
    return holder[0]

  return best_ms(advance)


def loop_free_scan(z, u, h0, activation="relu", unroll=1, bias=None, moments=False,
                   lengths=None):
  """Stand-in for the recurrence with no time loop (same shapes, same ops)."""
  del h0, activation, unroll, lengths
  hs = jax.nn.relu(z + bias + 0.5 * u)
  return hs, hs[-1], recurrences.sequence_sums(hs) if moments else ()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cpu_devices", type=int, default=1,
                      help="JAX devices to split the CPU into (the whole steps only)")
  args = parser.parse_args()
  print(f"glibc malloc keeps freed memory: {host_memory.keep_freed_memory()}", flush=True)
  parallel.set_cpu_devices(args.cpu_devices)
  print(f"devices: {jax.device_count()}", flush=True)
  print(f"whole step: {step_ms(throughput.case_config(CASE)):.1f} ms", flush=True)
  print(f"batch norm written out, not folded into the next kernel: "
        f"{step_ms(throughput.case_config(CASE), fold_norm=False):.1f} ms", flush=True)
  no_norm = throughput.case_config(CASE)
  no_norm.model.norm = "none"
  print(f"without batch norm: {step_ms(no_norm):.1f} ms", flush=True)
  with mock.patch.object(recurrences, "elementwise_scan", loop_free_scan):
    print(f"recurrence without its loop: {step_ms(throughput.case_config(CASE)):.1f} ms",
          flush=True)

  irnn = throughput.case_config(IRNN_CASE)
  print(f"IRNN 1 x 100, B=128 step: {step_ms(irnn, case=IRNN_CASE):.1f} ms", flush=True)
  with mock.patch.object(recurrences, "dense_scan", recurrences.dense_scan_autodiff):
    print(f"the same with JAX's own scan backward instead of the hand-written one: "
          f"{step_ms(irnn, case=IRNN_CASE):.1f} ms", flush=True)

  steps, batch, hidden = CASE.seq_len, CASE.batch, CASE.hidden
  z = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (steps, batch, hidden))
  u = jax.random.uniform(jax.random.PRNGKey(1), (hidden,))
  cotangent = jax.random.normal(jax.random.PRNGKey(2), z.shape)
  h0 = jnp.zeros((batch, hidden))
  scan = recurrences.elementwise_scan
  for unroll in (1, 2, 4, 8, 16):
    forward = jax.jit(lambda z, u, k=unroll: scan(z, u, h0, "relu", k)[0])
    grad = jax.jit(jax.grad(
        lambda z, u, k=unroll: jnp.sum(scan(z, u, h0, "relu", k)[0] * cotangent), (0, 1)))
    print(f"one layer's scan, unroll {unroll}: forward "
          f"{best_ms(lambda: forward(z, u), 5, 10):.2f} ms, forward + backward "
          f"{best_ms(lambda: grad(z, u), 5, 10):.2f} ms", flush=True)


if __name__ == "__main__":
  main()
