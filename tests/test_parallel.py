"""Data parallelism: a run on a mesh of 4 (virtual CPU) devices matches one device."""

import os
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
    from irnn_jax import train
    from tests.test_train import tiny_config

    cfg = tiny_config(num_steps=6, eval_every=6, checkpoint_every=6)
    cfg.model.norm = "sequence"  # Batch statistics must be global over the mesh.
    metrics = train.train_and_evaluate(cfg, sys.argv[1])
    restored = ocp.CheckpointManager(sys.argv[1] + "/checkpoints").restore(
        6, args=ocp.args.StandardRestore())
    flat, _ = ravel_pytree(restored["params"])
    np.save(sys.argv[2], np.asarray(flat))
    print("devices", jax.device_count(), "mse", metrics["test/mse"])
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
