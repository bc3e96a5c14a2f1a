"""Training throughput of irnn_jax against every peer, in one run.

  python -m benchmarks.throughput [--quick] [--json=PATH] [--only=TEXT] [--cpu_devices=N]

1. The float32 matrix-product rate of jax.devices()[0], measured with a
   jitted chain of products (each written in place, so allocation does not
   count) of two shapes: "projection" [T*B, 128] x [128, 128] with T=784,
   B=32 (the input projection of one 128-wide layer on sequential MNIST), and
   "square" [2048, 2048]^2. The "% matmul" column uses the projection rate.
2. For each case (a cell and a shape) and each device count (1, and N with
   --cpu_devices=N), one training step (forward, backward, optimizer update) of
   - irnn_jax: its own code path, as experiments.main builds it (the config
     file, run.build_model, run.initial_state, train.make_train_step), jitted
     with the state donated, on a data mesh of that many devices;
   - flax: `nn.RNN` over flax's stock cells (benchmarks/flax_models.py:
     SimpleCell relu + identity for IRNN, SimpleCell tanh, LSTMCell,
     OptimizedLSTMCell, GRUCell), on the same mesh, jit splitting the batch;
   - PyTorch with as many threads as devices (benchmarks/torch_models.py, one
     process per row): nn.RNN (relu, tanh), nn.LSTM, nn.GRU, and IndRNN as a
     per-step loop;
   - a plain `lax.scan` IndRNN (benchmarks/plain_scan.py), on one device.
   Each row's `ratio_vs_best_peer` is its sequences/s over the fastest peer of
   the same model, shape and device count.
   Cases (--quick): T=784, input 1, 10 classes from the last step, Adam, as
   configs/sequential_mnist.py: LSTM 1x128 at B=32 and 128, IRNN 1x100 B=128,
   GRU and tanh RNN 1x128 B=32, IndRNN 6x128 B=32 with batch norm; and IndRNN
   with impl "parallel" (the two-level scan, blocks of about sqrt(T) steps) at
   T=784 and, on the adding problem (configs/adding.py), both impls at T=5000,
   2x128, B=50. The full run adds impl "parallel" as one associative scan over
   all steps (block 0) at those shapes, the grid of every cell at 1 and 6
   layers, B=32 and 128, the adding problem at T=1000 and 5000, and IndRNN
   6x128 T=5000 for memory.

Malloc: both sides run with glibc malloc set to keep freed memory
(irnn_jax/host_memory.py: this process, and each PyTorch child through its
environment), as experiments.main trains; --default_malloc leaves both alone.

Throughput: at each device count, a case's implementations are compiled
(PyTorch's started) side by side and timed in turn, so that a ratio compares
timings of the same minutes (`time_interleaved`): the first step of each is
timed; one whose first step took --slow_seconds or more is measured by it
alone; the others get --repeats rounds, each an untimed step and then a timed
run of enough steps to fill --min_seconds over the rounds, and the median of
its rounds is the measurement (`warm`). Sequences/s = batch / time. The
`ratio_range` of an irnn_jax row is the lowest and highest of its ratio to its
best peer over the rounds.

FLOPs of one training step, matrix products only (elementwise work ignored):
  forward  = sum over layers of 2*T*B*D_l*G*H          (input projection)
                              + 2*T*B*H*G*H            (recurrent product; not IndRNN)
             + 2*B*H*O                                 (head on the last step)
  step     = 3 * forward                               (backward = 2 x forward)
with D_l the layer's input width, G the gates (1 IRNN/IndRNN/RNN, 4 LSTM,
3 GRU), O the outputs. "% matmul" = step FLOPs / seconds over the measured
projection rate (of the whole machine: XLA's CPU products use every core).

Peak memory: JAX, from XLA's buffer assignment of the compiled step
(`compiled.memory_analysis()`: arguments + outputs - donated aliases +
temporaries, per device, times the devices); PyTorch on CPU, the growth of the
process's peak resident set size (VmHWM, restarted after a warm-up); on a GPU,
torch.cuda.max_memory_allocated. MB = 10^6 bytes.

PyTorch is a benchmark-only dependency (pip install torch==2.13.0), not in
requirements.txt; without it the other rows still run.
"""

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from configs import adding as adding_config
from configs import sequential_mnist as smnist_config
from irnn_jax import cells, configlib, host_memory, models, optim, parallel, run, train
from irnn_jax.data.adding import adding_batch
from benchmarks import flax_models, plain_scan

MB = 1e6
CELLS = ("irnn", "indrnn", "lstm", "gru", "rnn")
NO_TORCH = ("PyTorch not installed: pip install torch==2.13.0 "
            "(benchmark-only, not in requirements.txt)")
TORCH_NAMES = {"irnn": "torch nn.RNN(relu)", "rnn": "torch nn.RNN(tanh)",
               "lstm": "torch nn.LSTM", "gru": "torch nn.GRU", "indrnn": "torch step loop"}
TARGET_LSTM_TORCH, TARGET_FLAX = 1.2, 1.5
TARGET_MEMORY_MB = 4000.0


@dataclasses.dataclass(frozen=True)
class Case:
  cell: str
  task: str  # "smnist" | "adding"
  seq_len: int
  batch: int
  layers: int
  hidden: int = 128
  impl: str = "sequential"  # IndRNN's time loop: sequential | parallel.
  block: int = 0  # impl parallel: steps per block of the two-level scan; 0 = one scan.
  peers: bool = True  # False: the rows of an equal shape measured the peers.
  torch: bool = True
  plain_scan: bool = False
  norm: bool | None = None  # None: as the config file says.
  remat: bool | None = None  # None: as the config file says.
  memory: bool = False  # Its peak memory is a target.

  @property
  def shape(self) -> str:
    task = "sMNIST" if self.task == "smnist" else "adding"
    extra = "" if self.remat is None else f" remat={'on' if self.remat else 'off'}"
    return f"{task} T={self.seq_len} {self.layers}x{self.hidden} B={self.batch}{extra}"

  @property
  def name(self) -> str:
    return f"{self.cell} {self.shape}" + (f" {self.own}" if self.own else "")

  @property
  def own(self) -> str:
    """The implementation's name after "irnn_jax"."""
    if self.impl == "sequential":
      return ""
    return self.impl + (f" block={self.block}" if self.block else "")


def task_shape(task: str) -> tuple[str, int, int]:
  """(loss kind, input width, outputs) of "smnist" or "adding"."""
  return ("classification", 1, 10) if task == "smnist" else ("regression", 2, 1)


def cases(quick: bool) -> list[Case]:
  """The target cases first, then (full run) the grid."""
  targets = [Case("lstm", "smnist", 784, 32, 1), Case("lstm", "smnist", 784, 128, 1),
             Case("irnn", "smnist", 784, 128, 1, hidden=100),
             Case("gru", "smnist", 784, 32, 1), Case("rnn", "smnist", 784, 32, 1),
             Case("indrnn", "smnist", 784, 32, 6, plain_scan=True),
             Case("indrnn", "smnist", 784, 32, 6, impl="parallel", block=28, peers=False),
             Case("indrnn", "adding", 5000, 50, 2),
             Case("indrnn", "adding", 5000, 50, 2, impl="parallel", block=71, peers=False)]
  if quick:
    return targets
  memory = Case("indrnn", "adding", 5000, 32, 6, norm=True, remat=True, memory=True)
  one_scan = [dataclasses.replace(c, block=0) for c in targets if c.impl == "parallel"]
  done = {(c.cell, c.shape) for c in targets}
  grid = [Case(c, "smnist", 784, b, n) for c in CELLS for n in (1, 6) for b in (32, 128)]
  grid += [Case(c, "adding", t, 50, 2 if c == "indrnn" else 1)
           for t in (1000, 5000) for c in CELLS]
  grid = [c for c in grid if (c.cell, c.shape) not in done]
  return targets + one_scan + [memory, dataclasses.replace(memory, remat=False)] + grid


def case_config(case: Case):
  """The config file's variant for the cell (GRU: the LSTM one), resized."""
  variant = "lstm" if case.cell == "gru" else case.cell
  if case.task == "smnist":
    c = smnist_config.get_config(variant)
    if case.seq_len != 784:
      raise ValueError(f"pixel MNIST has T=784, not {case.seq_len}")
  else:
    c = adding_config.get_config(variant)
    c.data.seq_len = case.seq_len
  c.model.cell = case.cell
  c.model.num_layers, c.model.hidden_size = case.layers, case.hidden
  c.data.batch_size = case.batch
  if case.cell == "indrnn":
    c.model.cells.indrnn.impl = case.impl
    c.model.cells.indrnn.parallel_block = case.block
  if case.norm is not None:
    c.model.norm = "sequence" if case.norm else "none"
  if case.remat is not None:
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


class JaxTimer:
  """A compiled step and its state: `run(n)` trains n steps, returns seconds."""

  def __init__(self, step, state, batch, unpack, devices: int):
    start = time.perf_counter()
    self.compiled = step.lower(state, batch).compile()
    memory = compiled_memory(self.compiled)  # Per device: times the devices.
    if devices > 1 and memory["peak_mb"] is not None:
      memory = {k: v * devices for k, v in memory.items()}
    self.info = {"compile_seconds": time.perf_counter() - start, **memory}
    self.state, self.batch, self.unpack = state, batch, unpack

  def run(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      self.state = self.unpack(self.compiled(self.state, self.batch))
    jax.block_until_ready(self.state)
    return time.perf_counter() - start

  def close(self) -> dict:
    self.state = self.compiled = self.batch = None
    return self.info


class TorchTimer:
  """A PyTorch model in a child process (benchmarks/torch_models.py), timed
  through its stdin and stdout; `run(n)` as JaxTimer's. Any failure of the
  child (it died, answered nothing within `timeout` seconds, or garbage) is a
  TorchFailed, after which the child is gone."""

  def __init__(self, spec: dict, env, timeout: float):
    self.timeout, self.stderr = timeout, tempfile.TemporaryFile(mode="w+")
    command = [sys.executable, "-m", "benchmarks.torch_models", json.dumps(spec)]
    self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=self.stderr, text=True, env=env)
    self.first = self._ask(None)["first_step_seconds"]

  def _ask(self, line: str | None) -> dict:
    """Send `line` (None: nothing) and read the child's one-line JSON reply."""
    try:
      return self._exchange(line)
    except TorchFailed:
      self._end()
      raise

  def _exchange(self, line: str | None) -> dict:
    try:
      if line is not None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
      ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
      if not ready:
        raise TorchFailed(f"no answer in {self.timeout:g} s", self)
      reply = self.process.stdout.readline()
      if not reply:
        raise TorchFailed("failed: " + self._stderr_tail(), self)
      return json.loads(reply)
    except (OSError, ValueError) as e:  # A closed pipe; a line that is not JSON.
      raise TorchFailed(f"failed ({e}): " + self._stderr_tail(), self) from e

  def _stderr_tail(self) -> str:
    self.process.poll()
    self.stderr.seek(0)
    return self.stderr.read()[-300:].strip()

  def _end(self):
    """Stop the child (if still running) and release its pipes."""
    if self.process.poll() is None:
      self.process.kill()
    self.process.wait()
    for stream in (self.process.stdin, self.process.stdout, self.stderr):
      try:
        stream.close()
      except OSError:
        pass

  def run(self, steps: int) -> float:
    if self.first is not None:  # The step the child trained while starting.
      first, self.first = self.first, None
      if steps == 1:
        return first
    return self._ask(str(steps))["seconds"]

  def close(self) -> dict:
    """The child's peak memory and versions; the child exits."""
    info = self._ask("")
    try:
      self.process.wait(self.timeout)
    except subprocess.TimeoutExpired:
      pass  # _end kills it.
    self._end()
    return info


class TorchFailed(RuntimeError):
  """A PyTorch child failed; `timer` is its TorchTimer."""

  def __init__(self, why: str, timer=None):
    super().__init__(why)
    self.timer = timer


def time_interleaved(timers: dict, args) -> dict:
  """Time every timer in turn, so that all of them see the same minutes.

  Each timer's first step (after compiling) is timed; a timer whose first step
  took --slow_seconds or more is measured by it alone. The others time a
  second step, which sets how many steps fill --min_seconds over all rounds,
  then get --repeats rounds: in each, every timer trains one untimed step
  (which brings back memory the system paged out while the others ran) and
  then a timed run of those steps. A timer's measurement is the median of its
  rounds; `timings` keeps them in round order.
  """
  first = {name: timer.run(1) for name, timer in timers.items()}
  results = {name: {"seconds_per_step": s, "steps": 1, "warm": False}
             for name, s in first.items()}
  warm = [name for name in timers if first[name] < args.slow_seconds]
  second = {name: timers[name].run(1) for name in warm}
  steps = {name: max(1, min(args.max_steps, math.ceil(args.min_seconds / args.repeats
                                                       / second[name]))) for name in warm}
  timings = {name: [] for name in warm}
  for _ in range(args.repeats):
    for name in warm:
      timers[name].run(1)
      timings[name].append(timers[name].run(steps[name]) / steps[name])
  for name in warm:
    results[name] = {"seconds_per_step": statistics.median(timings[name]),
                     "steps": steps[name], "repeats": args.repeats,
                     "timings": timings[name],
                     "spread": (min(timings[name]), max(timings[name])), "warm": True}
  return results


def case_spec(case: Case, inputs: np.ndarray) -> run.DataSpec:
  """The DataSpec of a case's synthetic batches (`inputs`)."""
  task, _, num_outputs = task_shape(case.task)
  return run.DataSpec(task=task, num_outputs=num_outputs, readout="last", vocab_size=0,
                      seq_len=case.seq_len, input_shape=tuple(inputs.shape[1:]),
                      input_dtype=str(inputs.dtype), carries_state=False)


def device_mesh(devices: int) -> Mesh:
  """The data mesh of the first `devices` JAX devices."""
  return Mesh(np.array(jax.devices()[:devices]), (parallel.DATA_AXIS,))


def irnn_jax_timer(case: Case, config, host_batch, mesh) -> JaxTimer:
  """The training step exactly as experiments.main builds it (irnn_jax.run)."""
  task = task_shape(case.task)[0]
  model = run.build_model(config, case_spec(case, host_batch["inputs"]))
  tx = optim.make_optimizer(config.optimizer)
  parallel.check_divisible(case.batch, "batch of this case", mesh)
  state = parallel.replicate(run.initial_state(config, model, tx, host_batch["inputs"]), mesh)
  step = train.make_train_step(config, model, tx, task, mesh=mesh)
  return JaxTimer(step, state, parallel.shard_batch(host_batch, mesh),
                  lambda out: out[0], mesh.devices.size)


def flax_timer(case: Case, config, host_batch, mesh, peer: str) -> JaxTimer:
  task, _, num_outputs = task_shape(case.task)
  state, step = flax_models.make(config, task, case.cell, peer, num_outputs,
                                 host_batch["inputs"], mesh)
  return JaxTimer(step, state, parallel.shard_batch(host_batch, mesh), lambda out: out,
                  mesh.devices.size)


def plain_scan_timer(case: Case, config, batch) -> JaxTimer:
  task, input_dim, num_outputs = task_shape(case.task)
  config = config.copy_and_resolve_references()
  config.data.seq_len = case.seq_len  # What it bounds u by (MNIST configs derive it).
  state, step = plain_scan.make(config, task, input_dim, num_outputs)
  return JaxTimer(step, state, batch, lambda out: out, 1)


def torch_timer(case: Case, config, args, threads: int) -> TorchTimer:
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
          "device": "cuda" if on_gpu else "cpu", "threads": threads}
  env = None if args.default_malloc else dict(os.environ, **host_memory.ENVIRONMENT)
  return TorchTimer(spec, env, args.torch_timeout)


def time_and_close(timers: dict, args) -> dict:
  """`time_interleaved`, then each timer's own results (`close`). A PyTorch
  child that fails is left out, its result {"skipped": why}, and the others
  are timed again without it."""
  skipped, timers = {}, dict(timers)
  while True:
    try:
      measured = time_interleaved(timers, args)
      break
    except TorchFailed as e:
      name = next(name for name, timer in timers.items() if timer is e.timer)
      skipped[name] = {"skipped": str(e)}
      del timers[name]
  results = {}
  for name, timer in timers.items():
    try:
      results[name] = {**timer.close(), **measured[name]}
    except TorchFailed as e:
      results[name] = {"skipped": str(e)}
  return {**results, **skipped}


def measured_rows(case: Case, args, have_torch: bool, device_counts) -> list[dict]:
  """One row per (implementation, device count) of this case; at each device
  count the implementations are timed in turn (`time_interleaved`)."""
  config = case_config(case)
  _, input_dim, num_outputs = task_shape(case.task)
  host_batch = make_batch(case)
  flops = train_flops(case.cell, case.layers, input_dim, case.hidden, case.seq_len,
                      case.batch, num_outputs)
  base = {"model": case.cell, "shape": case.shape, "case": case.name, "task": case.task,
          "seq_len": case.seq_len, "batch": case.batch, "layers": case.layers,
          "hidden": case.hidden, "memory_target": case.memory, "flops_per_step": flops}
  own = "irnn_jax" + (f" {case.own}" if case.own else "")
  rows = []
  for devices in device_counts:
    mesh = device_mesh(devices)
    timers, skipped = {own: irnn_jax_timer(case, config, host_batch, mesh)}, {}
    if case.peers:
      if case.layers == 1:
        for peer in flax_models.PEERS.get(case.cell, ()):
          timers[f"flax {peer}"] = flax_timer(case, config, host_batch, mesh, peer)
      if case.torch and have_torch:
        try:
          timers[TORCH_NAMES[case.cell]] = torch_timer(case, config, args, devices)
        except TorchFailed as e:
          skipped[TORCH_NAMES[case.cell]] = {"skipped": str(e)}
      if case.plain_scan and devices == 1:
        timers["plain lax.scan"] = plain_scan_timer(case, config, jax.device_put(host_batch))
    measured = {**time_and_close(timers, args), **skipped}
    rows += [dict(base, impl=impl, devices=devices, own=impl == own, result=result)
             for impl, result in measured.items()]
  return rows


def add_rates(row: dict, matmul_gflops: float):
  """Sequences/s, achieved GFLOP/s and the fraction of the matmul rate."""
  seconds = row["result"].get("seconds_per_step")
  row["seq_per_s"] = None if seconds is None else row["batch"] / seconds
  row["peak_mb"] = row["result"].get("peak_mb")
  row["gflops"] = None if seconds is None else row["flops_per_step"] / seconds / 1e9
  row["fraction_of_matmul"] = None if seconds is None else row["gflops"] / matmul_gflops


def _fastest_peer(rows: list[dict], row: dict, prefix: str = "") -> dict | None:
  """The fastest measured peer row (impl starting with `prefix`) of row's
  model, shape and device count; None when there is none."""
  peers = [r for r in rows if not r["own"] and r["seq_per_s"] and r["impl"].startswith(prefix)
           and (r["model"], r["shape"], r["devices"]) == (row["model"], row["shape"],
                                                          row["devices"])]
  return max(peers, key=lambda r: r["seq_per_s"], default=None)


def _ratio(rows: list[dict], row: dict, prefix: str = ""):
  """row's sequences/s over `_fastest_peer`'s (None if either is missing)."""
  best = _fastest_peer(rows, row, prefix)
  return None if best is None or row["seq_per_s"] is None else row["seq_per_s"] / best["seq_per_s"]


def round_ratios(row: dict, peer: dict) -> list[float]:
  """row's speed over peer's in each round they were both timed in."""
  mine, theirs = row["result"].get("timings", []), peer["result"].get("timings", [])
  return [t / s for s, t in zip(mine, theirs)] if len(mine) == len(theirs) else []


def add_peer_ratios(rows: list[dict]):
  """Each irnn_jax row: the fastest peer of its model, shape and device count,
  its sequences/s over that peer's, and the lowest and highest of that ratio
  over the rounds (`time_interleaved`)."""
  for row in rows:
    if row["own"]:
      best = _fastest_peer(rows, row)
      row["best_peer"] = None if best is None else best["impl"]
      row["best_peer_seq_per_s"] = None if best is None else best["seq_per_s"]
      row["ratio_vs_best_peer"] = _ratio(rows, row)
      # Rounds pair up only within one case's interleaved timing.
      ratios = round_ratios(row, best) if best and best["case"] == row["case"] else []
      row["ratio_range"] = (min(ratios), max(ratios)) if ratios else None


def _fmt(value, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
  head = ("| model | shape | devices | impl | seq/s | ratio vs best peer | its range "
          "| best peer | % matmul | peak MB |")
  lines = [head, "|" + "---|" * 10]
  for r in rows:
    spread = r.get("ratio_range")
    lines.append(" | ".join([
        "", r["model"], r["shape"], str(r["devices"]), r["impl"],
        _fmt(r["seq_per_s"], ",.1f"), _fmt(r.get("ratio_vs_best_peer"), ".2f"),
        "-" if spread is None else f"{spread[0]:.2f}-{spread[1]:.2f}",
        r.get("best_peer") or ("-" if r["own"] else ""),
        _fmt(None if r["fraction_of_matmul"] is None else 100 * r["fraction_of_matmul"],
             ".0f"),
        _fmt(r["peak_mb"], ",.0f"), ""]).strip())
  return "\n".join(lines)


def _check(name: str, value, target: float, above: bool, unit: str = "") -> dict:
  ok = value is not None and (value >= target if above else value < target)
  shown = "missing" if value is None else f"{value:.3g}{unit}"
  sign = ">=" if above else "<"
  return {"target": name, "value": value, "goal": f"{sign} {target:g}{unit}",
          "pass": ok, "line": f"{'PASS' if ok else 'FAIL'}  {name}: {shown} "
                              f"(target {sign} {target:g}{unit})"}


def check_targets(rows: list[dict]) -> list[dict]:
  """LSTM against nn.LSTM at the most devices and against flax at one;
  IRNN, tanh RNN and GRU against flax at one; every irnn_jax row ahead of
  its best peer; the memory case's peak."""
  checks, most = [], max((r["devices"] for r in rows), default=1)
  for row in (r for r in rows if r["own"]):
    where = f"{row['model']} {row['shape']} {row['impl']}, {row['devices']} device(s)"
    if row["model"] == "lstm" and row["devices"] == most and row["layers"] == 1:
      checks.append(_check(f"{where}: vs torch nn.LSTM, {most} thread(s)",
                           _ratio(rows, row, "torch"), TARGET_LSTM_TORCH, True, "x"))
    if row["devices"] == 1 and row["layers"] == 1 and row["model"] in flax_models.PEERS:
      goal = 1.0 if row["model"] == "lstm" else TARGET_FLAX
      checks.append(_check(f"{where}: vs flax's best cell", _ratio(rows, row, "flax"),
                           goal, True, "x"))
    if row.get("ratio_vs_best_peer") is not None:
      checks.append(_check(f"{where}: vs best peer ({row['best_peer']})",
                           row["ratio_vs_best_peer"], 1.0, True, "x"))
    if row["memory_target"]:
      checks.append(_check(f"{where}: peak memory (MB)", row["peak_mb"], TARGET_MEMORY_MB,
                           False, " MB"))
  return checks


def machine() -> dict:
  device = jax.devices()[0]
  versions = {"python": platform.python_version(), "jax": jax.__version__}
  for package in ("flax", "optax", "torch"):
    if importlib.util.find_spec(package) is not None:
      versions[package] = importlib.import_module(package).__version__
  return {"device": str(device), "platform": device.platform,
          "device_kind": device.device_kind, "cpu_count": os.cpu_count(),
          "cpu": platform.processor() or platform.machine(),
          "load_average": os.getloadavg(), **versions,
          "date": datetime.datetime.now().isoformat(timespec="seconds")}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true",
                 help="only the target cases (under 10 minutes on a 2-core CPU)")
  p.add_argument("--json", default="benchmarks/results.json",
                 help="JSON file to write: the machine, one row per (model, shape, devices, "
                      "impl), the targets")
  p.add_argument("--only", default="", help="run only cases whose name contains this")
  p.add_argument("--min_seconds", type=float, default=3.0,
                 help="time at least this long per measurement, over all repeats")
  p.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement; the median")
  p.add_argument("--slow_seconds", type=float, default=4.0,
                 help="a first step this slow is the measurement")
  p.add_argument("--max_steps", type=int, default=50)
  p.add_argument("--torch_timeout", type=float, default=300.0,
                 help="seconds a PyTorch child may take to answer (start, a timed run)")
  p.add_argument("--cpu_devices", type=int, default=1,
                 help="split the CPU into this many JAX devices (one per core), as "
                      "experiments.main --cpu_devices does, and measure every row at 1 "
                      "device and at this many (PyTorch with as many threads)")
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
  info = dict(machine(), malloc=malloc, jax_devices=jax.device_count())
  device_counts = sorted({1, jax.device_count()})
  print(f"device {info['device']} ({info['device_kind']}) x{info['jax_devices']}, "
        f"{info['cpu_count']} CPUs, load average {info['load_average'][0]:.1f}, "
        f"malloc: {malloc}, rows at {device_counts} device(s)", flush=True)
  projection = matmul_rate(784 * 32, 128)
  square = matmul_rate(2048, 2048)
  print(f"matmul float32: projection [25088,128]x[128,128] {projection:.1f} GFLOP/s "
        f"(used for % matmul), square 2048^3 {square:.1f} GFLOP/s", flush=True)

  rows = []
  for case in cases(args.quick):
    if args.only and args.only not in case.name:
      continue
    case_start = time.time()
    for row in measured_rows(case, args, have_torch, device_counts):
      add_rates(row, projection)
      rows.append(row)
      print(f"  {case.name}, {row['devices']} device(s), {row['impl']}: "
            f"{_fmt(row['seq_per_s'], ',.1f')} seq/s", file=sys.stderr, flush=True)
    print(f"  {case.name}: {time.time() - case_start:.0f} s", file=sys.stderr, flush=True)
  add_peer_ratios(rows)

  print(table(rows))
  checks = check_targets(rows)
  for check in checks:
    print(check["line"])
  info["load_average_end"] = os.getloadavg()
  total = time.time() - start
  print(f"total {total:.0f} s", flush=True)
  result = {"mode": "quick" if args.quick else "full", "command": " ".join(sys.argv),
            "machine": info, "torch_installed": have_torch, "seconds": total,
            "matmul_gflops": {"projection_25088x128x128": projection,
                              "square_2048": square, "used": "projection"},
            "rows": rows, "targets": checks, "table": table(rows)}
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  with open(args.json, "w") as f:
    json.dump(result, f, indent=2)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
