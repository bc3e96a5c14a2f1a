"""Data parallelism: a run on a mesh of 4 (virtual CPU) devices, and a run of
two processes joined by jax.distributed over loopback, match one device."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    from jax.flatten_util import ravel_pytree
    from irnn_jax import parallel, train
    from tests.test_train import tiny_config

    if len(sys.argv) > 3:  # coordinator address, number of processes, process id
      parallel.initialize(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    cfg = tiny_config(num_steps=6, eval_every=6, checkpoint_every=6)
    cfg.model.norm = "sequence"  # Batch statistics must be global over the mesh.
    metrics = train.train_and_evaluate(cfg, sys.argv[1])
    restored = ocp.CheckpointManager(sys.argv[1] + "/checkpoints").restore(
        6, args=ocp.args.StandardRestore())
    flat, _ = ravel_pytree(restored["params"])
    np.save(sys.argv[2], np.asarray(flat))
    print("devices", jax.device_count(), "processes", jax.process_count(),
          "mse", metrics["test/mse"])
""")


def _run(tmp_path, devices):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu")
  out = tmp_path / f"params_{devices}.npy"
  result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"run_{devices}"), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"devices {devices}" in result.stdout
  return np.load(out)


def test_four_devices_match_one(tmp_path):
  one, four = _run(tmp_path, 1), _run(tmp_path, 4)
  assert one.shape == four.shape
  np.testing.assert_allclose(four, one, rtol=1e-4, atol=1e-5)
  assert not np.array_equal(one, np.zeros_like(one))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_device(tmp_path):
  """Each process has one CPU device and feeds it its own half of every batch;
  gradients are all-reduced across the processes by the jitted step."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             JAX_PLATFORMS="cpu")
  address = f"127.0.0.1:{_free_port()}"
  workdir = tmp_path / "run_2proc"
  procs = [subprocess.Popen(
      [sys.executable, "-c", SCRIPT, str(workdir), str(tmp_path / f"params_p{i}.npy"),
       address, "2", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
    assert "devices 2 processes 2" in out
  one = _run(tmp_path, 1)
  for i in range(2):
    np.testing.assert_allclose(np.load(tmp_path / f"params_p{i}.npy"), one,
                               rtol=1e-4, atol=1e-5)
  events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
  assert len(events) == 1, events  # Only process 0 writes the logs.
