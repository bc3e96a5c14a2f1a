"""PyTorch baselines of the irnn_jax models, each timed in its own process.

  python -m benchmarks.torch_models '{"cell": "lstm", "seq_len": 784, ...}'

builds the model, trains one step and prints {"first_step_seconds": s}; then,
for each line N it reads on stdin, trains N steps and prints their seconds
({"seconds": s}); at an empty line or the end of stdin it prints the peak
memory and exits. So the parent (benchmarks/throughput.py) can time it in
turn with its own implementations. One process per case and thread count, so
that the peak resident set size (Linux VmHWM, restarted before the model is
built) belongs to that case alone. This module never imports JAX.

Models (time-major x[T, B, D], readout from the last step, Adam):
  irnn, rnn:  torch.nn.RNN(nonlinearity='relu' / 'tanh'), all layers in one module;
  lstm, gru:  torch.nn.LSTM / torch.nn.GRU;
  indrnn:     per layer, a Linear over all steps at once (the reference code's
              Linear_overtime module), then a Python loop over time steps,
              h = relu(z[t] + u * h) (the reference's CPU path,
              IndRNN_onlyrecurrent), then batch norm over time and batch when
              the JAX config has it. Autograd differentiates the loop.
On a GPU the same code runs on CUDA (cuDNN for RNN, LSTM and GRU).
"""

import json
import math
import resource
import sys
import time

import torch
from torch import nn

MB = 1e6


class IndRNNLayer(nn.Module):
  """Input projection of all steps in one product, then the per-step loop."""

  def __init__(self, input_dim: int, hidden: int, u_high: float):
    super().__init__()
    self.projection = nn.Linear(input_dim, hidden)
    self.u = nn.Parameter(torch.rand(hidden) * u_high)

  def forward(self, x):
    z = self.projection(x)
    h = z.new_zeros(z.shape[1:])
    outputs = []
    for z_t in z:
      h = torch.relu(z_t + self.u * h)
      outputs.append(h)
    return torch.stack(outputs)


class IndRNNStack(nn.Module):
  def __init__(self, input_dim, hidden, layers, norm: bool, u_high: float):
    super().__init__()
    dims = [input_dim] + [hidden] * (layers - 1)
    self.layers = nn.ModuleList(IndRNNLayer(d, hidden, u_high) for d in dims)
    self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in dims) if norm else None

  def forward(self, x):
    for i, layer in enumerate(self.layers):
      x = layer(x)
      if self.norms is not None:  # Statistics over time and batch.
        x = self.norms[i](x.reshape(-1, x.shape[-1])).reshape(x.shape)
    return x


class Classifier(nn.Module):
  """Recurrent stack over x[T, B, D], a Linear head on the last step."""

  def __init__(self, spec: dict):
    super().__init__()
    d, h, n = spec["input_dim"], spec["hidden"], spec["layers"]
    cell = spec["cell"]
    if cell == "indrnn":
      self.rnn = IndRNNStack(d, h, n, spec["norm"], min(spec["u_max"], 1.0))
    elif cell in ("irnn", "rnn"):
      self.rnn = nn.RNN(d, h, n, nonlinearity="relu" if cell == "irnn" else "tanh")
    elif cell == "lstm":
      self.rnn = nn.LSTM(d, h, n)
    elif cell == "gru":
      self.rnn = nn.GRU(d, h, n)
    else:
      raise ValueError(f"unknown cell {cell!r}")
    self.head = nn.Linear(h, spec["num_outputs"])

  def forward(self, x):
    out = self.rnn(x)
    out = out[0] if isinstance(out, tuple) else out
    return self.head(out[-1])


def make_batch(spec: dict, device):
  t, b, d = spec["seq_len"], spec["batch"], spec["input_dim"]
  x = torch.rand(t, b, d, device=device)
  if spec["task"] == "classification":
    y = torch.randint(0, spec["num_outputs"], (b,), device=device)
  else:
    y = torch.rand(b, device=device)
  return x, y


def make_step(spec: dict, model: nn.Module):
  """One training step: forward, loss, backward, clipping, Adam, u bound."""
  optimizer = torch.optim.Adam(model.parameters(), lr=spec["learning_rate"])
  classify = spec["task"] == "classification"
  u_params = [p for name, p in model.named_parameters() if name.endswith(".u")]

  def step(x, y):
    optimizer.zero_grad(set_to_none=True)
    out = model(x)
    loss = (nn.functional.cross_entropy(out, y) if classify
            else nn.functional.mse_loss(out[:, 0], y))
    loss.backward()
    if spec["clip_global_norm"] > 0:
      nn.utils.clip_grad_norm_(model.parameters(), spec["clip_global_norm"])
    optimizer.step()
    if math.isfinite(spec["u_max"]):
      with torch.no_grad():
        for u in u_params:
          u.clamp_(-spec["u_max"], spec["u_max"])

  return step


def _status_mb(field: str) -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024 / MB  # kB.
  raise KeyError(field)


def reset_peak_rss() -> float:
  """Restart the peak resident set size (Linux: VmHWM) at the current one;
  returns the current one in MB. Elsewhere the lifetime peak (ru_maxrss)."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return _status_mb("VmRSS")
  except OSError:
    return peak_rss_mb()


def peak_rss_mb() -> float:
  try:
    return _status_mb("VmHWM")
  except OSError:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux.


def serve(spec: dict, commands, reply):
  """Build `spec`'s model on `threads` threads, then answer (see the module
  docstring) each of `commands` (lines) by calling `reply` with a dict.

  A tiny copy of the model (2 steps) trains first so that libraries and
  kernels are loaded before the memory baseline is read.
  """
  torch.set_num_threads(spec["threads"])
  cuda = spec["device"] == "cuda" and torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  sync = torch.cuda.synchronize if cuda else (lambda: None)
  torch.manual_seed(0)

  tiny = dict(spec, seq_len=2)
  tiny_model = Classifier(tiny).to(device)
  make_step(tiny, tiny_model)(*make_batch(tiny, device))
  del tiny_model
  sync()
  if cuda:
    torch.cuda.reset_peak_memory_stats()
  rss_before = reset_peak_rss()

  model = Classifier(spec).to(device)
  step = make_step(spec, model)
  x, y = make_batch(spec, device)

  def steps(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      step(x, y)
    sync()
    return time.perf_counter() - start

  reply({"first_step_seconds": steps(1)})
  for line in commands:
    if not line.strip():
      break
    reply({"seconds": steps(int(line))})
  peak = (torch.cuda.max_memory_allocated() / MB if cuda
          else peak_rss_mb() - rss_before)
  reply({"peak_mb": peak, "device": str(device), "threads": torch.get_num_threads(),
         "torch": torch.__version__})


def _print_json(result: dict):
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  serve(json.loads(sys.argv[1]), sys.stdin, _print_json)
