"""The most sequences/s a one-layer recurrent training step can reach on one
device, from its matrix products alone.

  python -m benchmarks.product_bound [--cpu_devices=2]

Every implementation of an IRNN, tanh RNN, GRU or LSTM layer (irnn_jax's
loops, flax's `nn.RNN`, PyTorch's) computes the same products: per step, the
forward's h_{t-1} W_h ([B, H] x [H, G*H]) and the reverse's da_t W_h^T
([B, G*H] x [G*H, H]), one after the other, and the T*B rows' dW_h (here one
[T*B, H]^T x [T*B, G*H] product). This times them bare, on the first JAX
device: a jitted chain of T (forward, reverse) pairs, and dW_h; medians of 9.
Their sum is a floor on the step's time (the input product of a 1-wide
input, the head, the elementwise work and the optimizer come on top), so
batch / sum bounds its sequences/s. With --cpu_devices=2 the first device is
the one of `benchmarks.throughput`'s 1-device rows: one core for the loop's
small products, while a product as large as dW_h still uses both cores.
"""

import argparse
import statistics
import time

from irnn_jax import host_memory, parallel

# (model, batch, hidden, gates): benchmarks.throughput's target shapes, T=784.
SHAPES = (("irnn", 128, 100, 1), ("rnn", 32, 128, 1), ("gru", 32, 128, 3),
          ("lstm", 32, 128, 4), ("lstm", 16, 128, 4), ("lstm", 128, 128, 4))
STEPS = 784


def _median_ms(fn, *args) -> float:
  import jax
  jax.block_until_ready(fn(*args))  # Compiles.
  timings = []
  for _ in range(9):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    timings.append(time.perf_counter() - start)
  return 1e3 * statistics.median(timings)


def products(steps: int):
  """(pairs, kernel_grad), jitted: pairs(h, w, w_t) chains `steps` forward and
  reverse step products, h -> (h w) w_t; kernel_grad(h, da) = h^T da."""
  import jax
  pairs = jax.jit(lambda h, w, w_t: jax.lax.fori_loop(0, steps, lambda _, h: (h @ w) @ w_t, h))
  return pairs, jax.jit(lambda h, da: h.T @ da)


def product_ms(batch: int, hidden: int, gates: int, steps: int = STEPS) -> tuple[float, float]:
  """(ms of `steps` chained forward and reverse step products, ms of dW_h)."""
  import jax
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  w = jax.random.orthogonal(keys[0], gates * hidden)[:hidden]  # [H, GH], w w^T = I.
  on_device = lambda *arrays: jax.device_put(arrays, jax.devices()[0])
  pairs, kernel_grad = products(steps)
  loop = _median_ms(pairs, *on_device(jax.random.normal(keys[1], (batch, hidden)), w, w.T))
  rows = steps * batch
  after = _median_ms(kernel_grad, *on_device(jax.random.normal(keys[1], (rows, hidden)),
                                             jax.random.normal(keys[2], (rows, gates * hidden))))
  return loop, after


def table_row(model: str, batch: int, hidden: int, loop_ms: float, after_ms: float) -> str:
  """One markdown row: the times, their sum and the sequences/s it allows."""
  total = loop_ms + after_ms
  return (f"| {model} | {batch} | {hidden} | {loop_ms:.1f} | {after_ms:.1f} | {total:.1f} "
          f"| {1e3 * batch / total:,.0f} |")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--cpu_devices", type=int, default=1,
                 help="split the CPU into this many JAX devices first (one per core)")
  args = p.parse_args(argv)
  host_memory.keep_freed_memory()  # Before JAX starts, as benchmarks.throughput.
  parallel.set_cpu_devices(args.cpu_devices)
  import jax
  print(f"device {jax.devices()[0]} of {jax.device_count()}, T={STEPS}")
  print("| model | B | H | loop products ms | dW_h ms | sum ms | at most seq/s |")
  print("|---|---|---|---|---|---|---|")
  for model, batch, hidden, gates in SHAPES:
    print(table_row(model, batch, hidden, *product_ms(batch, hidden, gates)), flush=True)


if __name__ == "__main__":
  main()
