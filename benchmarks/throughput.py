"""Training throughput of irnn_jax against PyTorch, and against the machine.

  python -m benchmarks.throughput [--quick] [--output=PATH.json] [--only=TEXT]
                                  [--cpu_devices=N]

1. The float32 matrix-product rate of jax.devices()[0], measured with a
   jitted chain of products (each written in place, so allocation does not
   count) of two shapes: "projection" [T*B, 128] x [128, 128] with T=784,
   B=32 (the input projection of one 128-wide layer on sequential MNIST, the
   heavy product of IndRNN), and "square" [2048, 2048] x [2048, 2048]. The
   "% matmul" column and the targets use the projection rate, the rate this
   workload's products can reach; the JSON has both.
2. For each case, one training step (forward, backward, optimizer update) of
   irnn_jax's own code path -- the config file (configs/sequential_mnist.py,
   configs/adding.py), run.build_model, run.initial_state and
   train.make_train_step, jitted with the state donated -- and of the same
   model in PyTorch (benchmarks/torch_models.py, one process per case), plus a
   plain `lax.scan` IndRNN (benchmarks/plain_scan.py) for IndRNN 6x128.
   Cases: sequential MNIST (T=784, input 1, 10 classes from the last step,
   hidden 128, batch 32 and 128, 1 and 6 layers, every cell; GRU uses the
   LSTM config), the adding problem (T=1000 and 5000, input 2, one output,
   MSE, batch 50 as configs/adding.py; IndRNN 2x128, the others 1x128), IRNN
   1x100 at T=784 B=128, and IndRNN 6x128 with batch norm at T=5000 B=32 for
   memory (model.remat on, and off without --quick).

Malloc: both sides run with glibc malloc set to keep freed memory
(irnn_jax/host_memory.py: this process, and each PyTorch child through its
environment), as experiments.main trains; without it both fault their
step's buffers back in every step. --default_malloc leaves both as they are.

Throughput: the first step after compiling is timed; if it took less than
--slow_seconds, enough further steps run to fill --min_seconds and they are
the measurement (`warm`), else that one step is. Sequences/s = batch / time.

FLOPs of one training step, matrix products only (elementwise work ignored):
  forward  = sum over layers of 2*T*B*D_l*G*H          (input projection)
                              + 2*T*B*H*G*H            (recurrent product; not IndRNN)
             + 2*B*H*O                                 (head on the last step)
  step     = 3 * forward                               (backward = 2 x forward)
with D_l the layer's input width, G the gates (1 IRNN/IndRNN/RNN, 4 LSTM,
3 GRU), O the outputs. Achieved GFLOP/s = step FLOPs / seconds per step.

Devices: with --cpu_devices=N the CPU is split into N JAX devices and
irnn_jax's step runs on the data mesh of all of them, as `experiments.main
--cpu_devices=N` trains (each device its own rows of the batch, on its own
core); the plain scan and the matmul rate run on one device either way.

Peak memory: JAX, from XLA's buffer assignment of the compiled step
(`compiled.memory_analysis()`: arguments + outputs - donated aliases +
temporaries; per device, so times the devices); PyTorch on CPU, the growth of the process's peak resident set
size (VmHWM, restarted after a warm-up) over the training steps, after a tiny warm-up model; on a
GPU, torch.cuda.max_memory_allocated. MB = 10^6 bytes.

PyTorch is a benchmark-only dependency (pip install torch==2.13.0), not in
requirements.txt; without it the JAX side still runs.
"""

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import adding as adding_config
from configs import sequential_mnist as smnist_config
from irnn_jax import cells, configlib, host_memory, models, optim, parallel, run, train
from irnn_jax.data.adding import adding_batch
from benchmarks import plain_scan

MB = 1e6
CELLS = ("irnn", "indrnn", "lstm", "gru", "rnn")
NO_TORCH = ("PyTorch not installed: pip install torch==2.13.0 "
            "(benchmark-only, not in requirements.txt)")
TARGET_FRACTION, TARGET_TORCH_LOOP, TARGET_PLAIN_SCAN = 0.60, 15.0, 3.0
TARGET_IRNN_TORCH, TARGET_MEMORY_MB = 2.0, 4000.0


@dataclasses.dataclass(frozen=True)
class Case:
  cell: str
  task: str  # "smnist" | "adding"
  seq_len: int
  batch: int
  layers: int
  hidden: int = 128
  torch: bool = True
  plain_scan: bool = False
  norm: bool | None = None  # None: as the config file says.
  remat: bool | None = None  # None: as the config file says.
  label: str = ""  # Names a case that a target reads.

  @property
  def name(self) -> str:
    extra = "" if self.remat is None else f" remat={self.remat}"
    return (f"{self.cell} {self.task} T={self.seq_len} {self.layers}x{self.hidden} "
            f"B={self.batch}{extra}")


def task_shape(task: str) -> tuple[str, int, int]:
  """(loss kind, input width, outputs) of "smnist" or "adding"."""
  return ("classification", 1, 10) if task == "smnist" else ("regression", 2, 1)


def cases(quick: bool) -> list[Case]:
  """The target cases first, then the grid (full run only)."""
  target = Case("indrnn", "smnist", 784, 32, 6, plain_scan=True, label="indrnn_6x128")
  irnn = Case("irnn", "smnist", 784, 128, 1, hidden=100, label="irnn_1x100")
  memory = Case("indrnn", "adding", 5000, 32, 6, norm=True, remat=True,
                torch=not quick, label="memory")
  if quick:
    return [target, irnn, memory]
  grid = [Case(c, "smnist", 784, b, n) for c in CELLS for n in (1, 6) for b in (32, 128)]
  grid = [c for c in grid if (c.cell, c.layers, c.batch) != ("indrnn", 6, 32)]
  add = [Case(c, "adding", t, 50, 2 if c == "indrnn" else 1)
         for t in (1000, 5000) for c in CELLS]
  return [target, irnn, memory, dataclasses.replace(memory, remat=False)] + grid + add


def case_config(case: Case):
  """The config file's variant for the cell (GRU: the LSTM one), resized."""
  variant = "lstm" if case.cell == "gru" else case.cell
  if case.task == "smnist":
    c = smnist_config.get_config(variant)
    if c.data.seq_len != case.seq_len:
      raise ValueError(f"sequential MNIST has T={c.data.seq_len}, not {case.seq_len}")
  else:
    c = adding_config.get_config(variant)
    c.data.seq_len = case.seq_len
  c.model.cell = case.cell
  c.model.num_layers, c.model.hidden_size = case.layers, case.hidden
  c.data.batch_size = case.batch
  if case.norm is not None:
    c.model.norm = "sequence" if case.norm else "none"
  if case.remat is not None and hasattr(c.model, "remat"):
    c.model.remat = case.remat
  configlib.validate(c)
  return c


def make_batch(case: Case) -> dict:
  rng = np.random.default_rng(0)
  if case.task == "adding":
    return adding_batch(rng, case.batch, case.seq_len)
  return {"inputs": rng.random((case.batch, case.seq_len, 1), np.float32),
          "targets": rng.integers(0, 10, case.batch).astype(np.int32)}


def train_flops(cell: str, layers: int, input_dim: int, hidden: int, seq_len: int,
                batch: int, num_outputs: int) -> int:
  """Matrix-product FLOPs of one training step (formula in the module docstring)."""
  gates = cells.get(cell).gates
  forward, width = 2 * batch * hidden * num_outputs, input_dim
  for _ in range(layers):
    forward += 2 * seq_len * batch * width * gates * hidden
    if cell != "indrnn":
      forward += 2 * seq_len * batch * hidden * gates * hidden
    width = hidden
  return 3 * forward


def _product_chain(x, q, pairs):
  """x <- x @ q, 2 * pairs times, ping-ponging between two buffers so that
  every product writes in place (no per-product allocation or copy)."""
  def two_products(_, buffers):
    y = buffers[0] @ q
    return y @ q, y
  return jax.lax.fori_loop(0, pairs, two_products, (x, x))[0]


def matmul_rate(rows: int, width: int, seconds: float = 0.5) -> float:
  """The float32 rate of [rows, width] x [width, width] products, in GFLOP/s:
  best of 5 timings of a jitted chain of them (`_product_chain`, q orthogonal
  so values stay put), so that the rate does not depend on the allocator."""
  x = jax.random.normal(jax.random.PRNGKey(0), (rows, width), jnp.float32)
  q = jax.random.orthogonal(jax.random.PRNGKey(1), width, dtype=jnp.float32)
  chain = jax.jit(_product_chain)
  chain(x, q, 1).block_until_ready()  # Compiles.
  start = time.perf_counter()
  chain(x, q, 1).block_until_ready()
  pairs = max(1, math.ceil(seconds / (time.perf_counter() - start)))
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    chain(x, q, pairs).block_until_ready()
    best = min(best, (time.perf_counter() - start) / (2 * pairs))
  return 2 * rows * width * width / best / 1e9


def compiled_memory(compiled) -> dict:
  """XLA's memory analysis of a compiled step, in MB."""
  m = compiled.memory_analysis()
  if m is None:
    return {"peak_mb": None}
  sizes = {k: getattr(m, f"{k}_size_in_bytes") / MB
           for k in ("argument", "output", "alias", "temp")}
  sizes["peak_mb"] = sizes["argument"] + sizes["output"] - sizes["alias"] + sizes["temp"]
  xla_peak = getattr(m, "peak_memory_in_bytes", 0)
  if xla_peak:
    sizes["xla_peak_mb"] = xla_peak / MB
  return sizes


def time_steps(advance, state, args) -> dict:
  """Time `state = advance(state)` (see the module docstring)."""
  start = time.perf_counter()
  state = jax.block_until_ready(advance(state))
  first = time.perf_counter() - start
  steps, seconds = 1, first
  if first < args.slow_seconds:
    steps = max(1, min(args.max_steps, math.ceil(args.min_seconds / first)))
    start = time.perf_counter()
    for _ in range(steps):
      state = advance(state)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
  return {"seconds_per_step": seconds / steps, "steps": steps,
          "warm": first < args.slow_seconds}


def measure_jax(step, state, batch, unpack, args, devices: int = 1) -> dict:
  """Compile `step` for (state, batch), read its memory (XLA's analysis is
  per device: times `devices`), time it."""
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  memory = compiled_memory(compiled)
  if devices > 1 and memory["peak_mb"] is not None:
    memory = {k: v * devices for k, v in memory.items()}
  result = {"compile_seconds": time.perf_counter() - start, "devices": devices, **memory}
  result.update(time_steps(lambda s: unpack(compiled(s, batch)), state, args))
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:  # GPU: the process's peak so far.
    result["device_peak_mb_so_far"] = stats["peak_bytes_in_use"] / MB
  return result


def case_spec(case: Case, inputs: np.ndarray) -> run.DataSpec:
  """The DataSpec of a case's synthetic batches (`inputs`)."""
  task, _, num_outputs = task_shape(case.task)
  return run.DataSpec(task=task, num_outputs=num_outputs, readout="last", vocab_size=0,
                      seq_len=case.seq_len, input_shape=tuple(inputs.shape[1:]),
                      input_dtype=str(inputs.dtype), carries_state=False)


def run_irnn_jax(case: Case, config, host_batch, args) -> dict:
  """The training step exactly as experiments.main builds it (irnn_jax.run),
  on the data mesh of all devices (--cpu_devices)."""
  task = task_shape(case.task)[0]
  model = run.build_model(config, case_spec(case, host_batch["inputs"]))
  tx = optim.make_optimizer(config.optimizer)
  mesh = parallel.data_mesh()
  parallel.check_divisible(case.batch, "batch of this case", mesh)
  state = parallel.replicate(run.initial_state(config, model, tx, host_batch["inputs"]), mesh)
  step = train.make_train_step(config, model, tx, task, mesh=mesh)
  return measure_jax(step, state, parallel.shard_batch(host_batch, mesh),
                     lambda out: out[0], args, mesh.devices.size)


def run_plain_scan(case: Case, config, batch, args) -> dict:
  task, input_dim, num_outputs = task_shape(case.task)
  state, step = plain_scan.make(config, task, input_dim, num_outputs)
  return measure_jax(step, state, batch, lambda out: out, args)


def run_torch(case: Case, config, args) -> dict:
  """The PyTorch model in a child process (benchmarks/torch_models.py)."""
  task, input_dim, num_outputs = task_shape(case.task)
  on_gpu = jax.devices()[0].platform == "gpu"
  spec = {"cell": case.cell, "task": task, "seq_len": case.seq_len,
          "batch": case.batch, "layers": case.layers, "hidden": case.hidden,
          "input_dim": input_dim, "num_outputs": num_outputs,
          "norm": config.model.norm != "none",
          "u_max": getattr(models.layer_cells(config.model, case.seq_len, 1)[0], "u_bound",
                           float("inf")),
          "learning_rate": config.optimizer.learning_rate,
          "clip_global_norm": config.optimizer.clip_global_norm,
          "device": "cuda" if on_gpu else "cpu", "min_seconds": args.min_seconds,
          "max_steps": args.max_steps, "slow_seconds": args.slow_seconds}
  command = [sys.executable, "-m", "benchmarks.torch_models", json.dumps(spec)]
  env = None if args.default_malloc else dict(os.environ, **host_memory.ENVIRONMENT)
  try:
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=args.torch_timeout, check=False)
  except subprocess.TimeoutExpired:
    return {"skipped": f"over {args.torch_timeout} s"}
  if done.returncode != 0:
    return {"skipped": "failed: " + done.stderr.strip()[-300:]}
  return json.loads(done.stdout.strip().splitlines()[-1])


def run_case(case: Case, args, have_torch: bool) -> list[dict]:
  """One row for irnn_jax (with its PyTorch baseline), one for the plain scan."""
  config = case_config(case)
  _, input_dim, num_outputs = task_shape(case.task)
  host_batch = make_batch(case)
  batch = jax.device_put(host_batch)
  flops = train_flops(case.cell, case.layers, input_dim, case.hidden, case.seq_len,
                      case.batch, num_outputs)
  base = {"case": case.name, **dataclasses.asdict(case), "flops_per_step": flops,
          "remat_field": hasattr(config.model, "remat")}
  row = dict(base, impl="irnn_jax", jax=run_irnn_jax(case, config, host_batch, args))
  if not case.torch:
    row["torch"] = {"skipped": "not in --quick"}
  elif not have_torch:
    row["torch"] = {"skipped": "PyTorch not installed"}
  else:
    row["torch"] = run_torch(case, config, args)
  rows = [row]
  if case.plain_scan:
    rows.append(dict(base, impl="plain lax.scan", label=case.label + "_plain",
                     jax=run_plain_scan(case, config, batch, args),
                     torch={"skipped": "baseline row"}))
  return rows


def add_rates(row: dict, matmul_gflops: float):
  """Sequences/s, achieved GFLOP/s, fraction of the matmul rate, speedup."""
  for side in ("jax", "torch"):
    r = row[side]
    if "seconds_per_step" in r:
      r["sequences_per_second"] = row["batch"] / r["seconds_per_step"]
  seconds = row["jax"]["seconds_per_step"]
  row["gflops"] = row["flops_per_step"] / seconds / 1e9
  row["fraction_of_matmul"] = row["gflops"] / matmul_gflops
  if "seconds_per_step" in row["torch"]:
    row["speedup_over_torch"] = row["torch"]["seconds_per_step"] / seconds


def _fmt(value, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
  head = ("| cell | shape | layers | batch | jax seq/s | torch seq/s | speedup "
          "(torch s / jax s) | GFLOP/s | % matmul | jax peak MB | torch peak MB |")
  lines = [head, "|" + "---|" * 11]
  for r in rows:
    cell = r["cell"] + (" (plain scan)" if r["impl"] != "irnn_jax" else "")
    shape = f"{'sMNIST' if r['task'] == 'smnist' else 'adding'} T={r['seq_len']}"
    if r["remat"] is not None:
      shape += f", remat={'on' if r['remat'] else 'off'}"
    torch = r["torch"]
    lines.append(" | ".join([
        "", cell, shape, f"{r['layers']}x{r['hidden']}", str(r["batch"]),
        _fmt(r["jax"].get("sequences_per_second"), ".1f"),
        _fmt(torch.get("sequences_per_second"), ".1f"),
        _fmt(r.get("speedup_over_torch"), ".2f"),
        _fmt(r["gflops"], ".1f"), _fmt(100 * r["fraction_of_matmul"], ".0f"),
        _fmt(r["jax"].get("peak_mb"), ".0f"), _fmt(torch.get("peak_mb"), ".0f"),
        ""]).strip())
  return "\n".join(lines)


def _check(name: str, value, target: float, above: bool, unit: str = "") -> dict:
  ok = value is not None and (value >= target if above else value < target)
  shown = "missing" if value is None else f"{value:.3g}{unit}"
  sign = ">=" if above else "<"
  return {"target": name, "value": value, "goal": f"{sign} {target:g}{unit}",
          "pass": ok, "line": f"{'PASS' if ok else 'FAIL'}  {name}: {shown} "
                              f"(target {sign} {target:g}{unit})"}


def check_targets(rows: list[dict]) -> list[dict]:
  """The speed targets, read from the labelled rows."""
  by_label = {r["label"]: r for r in rows if r["label"] and r["impl"] == "irnn_jax"}
  plain = next((r for r in rows if r["label"] == "indrnn_6x128_plain"), None)
  checks = []
  ind = by_label.get("indrnn_6x128")
  if ind:
    name = "IndRNN 6x128 T=784 B=32"
    checks.append(_check(f"{name}: fraction of the projection matmul rate",
                         ind["fraction_of_matmul"], TARGET_FRACTION, True))
    checks.append(_check(f"{name}: speedup over the PyTorch loop",
                         ind.get("speedup_over_torch"), TARGET_TORCH_LOOP, True, "x"))
    if plain:
      checks.append(_check(f"{name}: speedup over the plain lax.scan",
                           plain["jax"]["seconds_per_step"] / ind["jax"]["seconds_per_step"],
                           TARGET_PLAIN_SCAN, True, "x"))
  irnn = by_label.get("irnn_1x100")
  if irnn:
    checks.append(_check("IRNN 1x100 T=784 B=128: speedup over torch nn.RNN(relu)",
                         irnn.get("speedup_over_torch"), TARGET_IRNN_TORCH, True, "x"))
  for r in rows:
    if r["label"] == "memory":
      remat = "" if r["remat"] is None or not r["remat_field"] else (
          f", remat={'on' if r['remat'] else 'off'}")
      checks.append(_check(f"IndRNN 6x128 T=5000 B=32{remat}: peak memory (MB)",
                           r["jax"].get("peak_mb"), TARGET_MEMORY_MB, False, " MB"))
  return checks


def machine() -> dict:
  device = jax.devices()[0]
  return {"device": str(device), "platform": device.platform,
          "device_kind": device.device_kind, "cpu_count": os.cpu_count(),
          "load_average": os.getloadavg(), "python": platform.python_version(),
          "jax": jax.__version__,
          "date": datetime.datetime.now().isoformat(timespec="seconds")}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true",
                 help="only the target cases (under 2 minutes on a 2-core CPU)")
  p.add_argument("--output", default="benchmarks/results.json", help="JSON file to write")
  p.add_argument("--only", default="", help="run only cases whose name contains this")
  p.add_argument("--min_seconds", type=float, default=3.0,
                 help="time at least this long per measurement")
  p.add_argument("--slow_seconds", type=float, default=4.0,
                 help="a first step this slow is the measurement")
  p.add_argument("--max_steps", type=int, default=50)
  p.add_argument("--torch_timeout", type=float, default=300.0,
                 help="seconds allowed for one PyTorch case")
  p.add_argument("--cpu_devices", type=int, default=1,
                 help="split the CPU into this many JAX devices, as experiments.main "
                      "--cpu_devices does: irnn_jax's step then runs one device per "
                      "core (the plain scan and the matmul rate stay on one)")
  p.add_argument("--default_malloc", action="store_true",
                 help="leave glibc malloc as it is on both sides, instead of setting "
                      "both to keep freed memory (irnn_jax/host_memory.py)")
  return p.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  start = time.time()
  kept = not args.default_malloc and host_memory.keep_freed_memory()  # Before JAX starts.
  args.default_malloc = not kept  # The PyTorch children follow this process.
  parallel.set_cpu_devices(args.cpu_devices)  # Before JAX starts its CPU backend.
  malloc = "keep freed memory (both sides)" if kept else "glibc default"
  have_torch = importlib.util.find_spec("torch") is not None
  if not have_torch:
    print(NO_TORCH, flush=True)
  info = dict(machine(), malloc=malloc)
  info["jax_devices"] = jax.device_count()
  print(f"device {info['device']} ({info['device_kind']}) x{info['jax_devices']}, "
        f"{info['cpu_count']} CPUs, "
        f"load average {info['load_average'][0]:.1f}, malloc: {malloc}", flush=True)
  projection = matmul_rate(784 * 32, 128)
  square = matmul_rate(2048, 2048)
  print(f"matmul float32: projection [25088,128]x[128,128] {projection:.1f} GFLOP/s "
        f"(used for % matmul), square 2048^3 {square:.1f} GFLOP/s", flush=True)

  rows = []
  for case in cases(args.quick):
    if args.only and args.only not in case.name:
      continue
    case_start = time.time()
    for row in run_case(case, args, have_torch):
      add_rates(row, projection)
      rows.append(row)
    print(f"  {case.name}: {time.time() - case_start:.0f} s", file=sys.stderr, flush=True)

  print(table(rows))
  checks = check_targets(rows)
  for check in checks:
    print(check["line"])
  info["load_average_end"] = os.getloadavg()
  total = time.time() - start
  print(f"total {total:.0f} s", flush=True)
  result = {"mode": "quick" if args.quick else "full", "machine": info,
            "torch_installed": have_torch, "seconds": total,
            "matmul_gflops": {"projection_25088x128x128": projection,
                              "square_2048": square, "used": "projection"},
            "rows": rows, "targets": checks, "table": table(rows)}
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.output}")


if __name__ == "__main__":
  main()
