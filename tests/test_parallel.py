"""Data parallelism: a run on a mesh of 4 (virtual CPU) devices, and a run of
two processes joined by jax.distributed over loopback, match one device."""

import concurrent.futures
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    from jax.flatten_util import ravel_pytree
    from irnn_jax import parallel, train
    from tests.conftest import tiny_config

    if len(sys.argv) > 4:  # coordinator address, number of processes, process id
      parallel.initialize(sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    # "indrnn:parallel": that impl; "indrnn:parallel:5": and blocks of 5 steps.
    cell, _, impl = sys.argv[3].partition(":")
    impl, _, block = impl.partition(":")
    cfg = tiny_config("lstm" if cell == "gru" else cell, num_steps=6, eval_every=6,
                      checkpoint_every=6)
    cfg.model.cell = cell
    if impl:
      cfg.model.cells.indrnn.impl = impl
    if block:
      cfg.model.cells.indrnn.parallel_block = int(block)
    if cell == "indrnn":
      cfg.model.norm = "sequence"  # Batch statistics must be global over the mesh.
      cfg.model.bidirectional = True
      cfg.train.precise_bn_batches = 2  # Statistics from the batch-statistics step.
    metrics = train.train_and_evaluate(cfg, sys.argv[1])
    restored = ocp.CheckpointManager(sys.argv[1] + "/checkpoints").restore(
        6, args=ocp.args.StandardRestore())
    flat, _ = ravel_pytree(restored["params"])
    np.save(sys.argv[2], np.asarray(flat))
    print("devices", jax.device_count(), "processes", jax.process_count(),
          "mse", repr(metrics["test/mse"]))
""")


def _run(tmp_path, devices, cell="indrnn"):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu")
  name = f"{cell.replace(':', '_')}_{devices}"
  out = tmp_path / f"params_{name}.npy"
  result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"run_{name}"),
                           str(out), cell],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"devices {devices}" in result.stdout
  return np.load(out), float(result.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["indrnn", "irnn", "lstm", "gru"])
def test_four_devices_match_one(tmp_path, cell):
  """IndRNN (bidirectional, batch norm over the sequence), IRNN, LSTM and GRU."""
  (one, one_mse), (four, four_mse) = _run(tmp_path, 1, cell), _run(tmp_path, 4, cell)
  assert one.shape == four.shape
  np.testing.assert_allclose(four, one, rtol=1e-4, atol=1e-5)
  assert not np.array_equal(one, np.zeros_like(one))
  np.testing.assert_allclose(four_mse, one_mse, rtol=1e-4)  # Evaluation, split 4 ways.


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["indrnn:parallel", "indrnn:parallel:5"])
def test_parallel_indrnn_over_four_devices_matches_the_loop_on_one(tmp_path, parallel):
  """The associative-scan IndRNN (one scan, and blocks of 5 steps, the last
  padded; its gradients summed over the devices by its own backward pass)
  trained on 4 devices ends where the loop on 1 does."""
  (one, one_mse), (four, four_mse) = (_run(tmp_path, 1, "indrnn"),
                                      _run(tmp_path, 4, parallel))
  np.testing.assert_allclose(four, one, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(four_mse, one_mse, rtol=1e-4)


LENGTHS_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    from jax.flatten_util import ravel_pytree
    from irnn_jax import configlib, train
    from irnn_jax.data import bumps

    seqs = bumps.make_bumps(40, seed=0)  # 30 to 60 steps each: every batch is padded.
    path = sys.argv[1] + ".npz"
    np.savez(path, x_train=seqs.x, y_train=seqs.labels, len_train=seqs.lengths)
    cfg = configlib.base_config()
    cfg.data.update(name="arrays", path=path, seq_len=0, batch_size=8, eval_batch_size=12,
                    eval_examples=0, valid_fraction=0.25)
    cfg.model.update(cell="indrnn", hidden_size=6, num_layers=2, norm="sequence",
                     bidirectional=True, input_init="glorot")
    cfg.train.update(num_steps=6, eval_every=6, checkpoint_every=6, log_every=3,
                     precise_bn_batches=2)
    metrics = train.train_and_evaluate(cfg, sys.argv[1])
    restored = ocp.CheckpointManager(sys.argv[1] + "/checkpoints").restore(
        6, args=ocp.args.StandardRestore())
    flat, _ = ravel_pytree((restored["params"], restored["batch_stats"]))
    np.save(sys.argv[2], np.asarray(flat))
    print("devices", jax.device_count(), "loss", repr(metrics["valid/loss"]))
""")


@pytest.mark.slow
def test_padded_sequences_over_four_devices_match_one(tmp_path):
  """Variable-length sequences (lengths 30 to 60 in every batch): a bidirectional
  IndRNN with batch norm over the valid steps, trained and evaluated on 4
  devices, each holding rows of other lengths, matches one device."""
  results = []
  for devices in (1, 4):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    out = tmp_path / f"state_{devices}.npy"
    result = subprocess.run([sys.executable, "-c", LENGTHS_SCRIPT, str(tmp_path / f"run_{devices}"),
                             str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"devices {devices}" in result.stdout
    results.append((np.load(out), float(result.stdout.split()[-1])))
  (one, one_loss), (four, four_loss) = results
  np.testing.assert_allclose(four, one, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(four_loss, one_loss, rtol=1e-4)


STEP_SCRIPT = textwrap.dedent("""
    import jax
    from irnn_jax import parallel, run, train
    from tests.conftest import tiny_config

    cfg = tiny_config("indrnn")
    cfg.model.norm = "sequence"
    cfg.model.bidirectional = True
    built = run.build(cfg, None)
    dataset, model, tx = built.dataset, built.model, built.optimizer
    batch = dataset.train_batch(0)
    mesh = parallel.data_mesh()
    state = parallel.replicate(built.state, mesh)
    step = train.make_train_step(cfg, model, tx, dataset.task, mesh=mesh)
    rows = parallel.shard_batch(batch, mesh)
    eval_step = train.make_eval_step(model, dataset.task, mesh)
    stats_step = train.make_batch_stats_step(model, mesh)
    for name, compiled in [
        ("train", step.lower(state, rows)),
        ("eval", eval_step.lower(state.params, state.batch_stats, rows, None)),
        ("stats", stats_step.lower(state.params, state.batch_stats,
                                   {"inputs": rows["inputs"]}))]:
      hlo = compiled.compile().as_text()
      print(name, jax.device_count(), hlo.count("all-gather("), hlo.count("all-reduce("))
""")


@pytest.mark.slow
def test_steps_move_no_activations_between_devices():
  """Each device runs the forward and backward pass on its own rows: the
  compiled 4-device training, evaluation and batch-statistics steps of a
  bidirectional IndRNN with batch norm all-reduce sums but gather nothing
  (XLA's own partitioning all-gathered [T, B, H] activations)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", STEP_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  counts = {line.split()[0]: [int(n) for n in line.split()[1:]]
            for line in result.stdout.splitlines()}
  assert sorted(counts) == ["eval", "stats", "train"], result.stdout
  for name, (devices, gathers, reduces) in counts.items():
    assert devices == 4 and gathers == 0 and reduces > 0, (name, result.stdout)


BATCH_NORM_SCRIPT = textwrap.dedent("""
    import jax
    import numpy as np
    from jax.sharding import PartitionSpec
    from irnn_jax import parallel
    from irnn_jax.layers import RecurrentLayer
    from tests.conftest import LARGE_MEAN_CELL, large_mean_params

    x = np.random.default_rng(0).normal(size=(9, 16, 6)).astype(np.float32)
    x[:, :, :] += 3.0 * np.repeat(np.arange(4), 4)[None, :, None]  # Each device's rows apart.
    mesh = parallel.data_mesh()
    for norm, position in [("sequence", "post"), ("sequence", "pre"), ("per_step", "post"),
                           ("per_step", "pre")]:
      layer = RecurrentLayer(LARGE_MEAN_CELL, norm=norm, norm_position=position,
                             time_major=True)
      variables = layer.init(jax.random.PRNGKey(0), x, train=False)
      variables = {**variables, "params": large_mean_params(variables["params"])}

      def apply(variables, x):
        y, updated = layer.apply(variables, x, train=True, mutable=["batch_stats"])
        return y, updated["batch_stats"]

      rows = PartitionSpec(None, parallel.DATA_AXIS)
      mapped = jax.shard_map(apply, mesh=mesh, in_specs=(PartitionSpec(), rows),
                             out_specs=(rows, PartitionSpec()))
      (y_one, stats_one), (y_all, stats_all) = jax.jit(apply)(variables, x), jax.jit(mapped)(
          variables, x)
      stats_error = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                        for a, b in zip(jax.tree.leaves(stats_all), jax.tree.leaves(stats_one)))
      print(norm, position, jax.device_count(),
            float(np.abs(np.asarray(y_all) - np.asarray(y_one)).max()), stats_error)
""")


@pytest.mark.slow
def test_batch_norm_over_four_devices_matches_one():
  """Batch-norm statistics combined over the devices of the per-device map
  (global mean first, then each device's squared deviations moved to it) give
  one device's outputs and running statistics, for h of mean about 10 and
  spread 0.03 within each device's rows, the devices' means apart."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", BATCH_NORM_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert len(lines) == 4, result.stdout
  for line in lines:
    *case, devices, output_error, stats_error = line.split()
    assert int(devices) == 4 and float(output_error) < 1e-3 and float(stats_error) < 1e-5, line


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _communicate_all(procs, timeout):
  """Every process's (stdout, stderr), read side by side; on a timeout all are
  killed and the error shows what each one printed."""
  with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
    futures = [pool.submit(p.communicate, timeout=timeout) for p in procs]
    concurrent.futures.wait(futures, timeout=timeout + 5)
    if all(f.done() and f.exception() is None for f in futures):
      return [f.result() for f in futures]
    for p in procs:
      p.kill()
    tails = [f"process {i}:\n" + (p.communicate()[1] or "")[-2000:]
             for i, p in enumerate(procs)]
  raise AssertionError(f"not all processes ended within {timeout} s\n" + "\n".join(tails))


@pytest.mark.slow
def test_two_processes_match_one_device(tmp_path):
  """Each process has one CPU device and feeds it its own half of every batch;
  gradients are all-reduced across the processes by the jitted step."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             JAX_PLATFORMS="cpu")
  address = f"127.0.0.1:{_free_port()}"
  workdir = tmp_path / "run_2proc"
  procs = [subprocess.Popen(
      [sys.executable, "-c", SCRIPT, str(workdir), str(tmp_path / f"params_p{i}.npy"),
       "indrnn", address, "2", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outputs = _communicate_all(procs, timeout=300)
  for i, (p, (out, err)) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {i} exited {p.returncode}:\n{err[-3000:]}"
    assert "devices 2 processes 2" in out
  one, one_mse = _run(tmp_path, 1)
  for i, (out, _) in enumerate(outputs):
    np.testing.assert_allclose(np.load(tmp_path / f"params_p{i}.npy"), one,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(out.split()[-1]), one_mse, rtol=1e-4)
  events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
  assert len(events) == 1, events  # Only process 0 writes the logs.


@pytest.mark.slow
def test_main_splits_the_cpu(tmp_path):
  """`experiments.main --cpu_devices=2` trains on a mesh of two CPU devices."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  result = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--config=configs/adding.py",
       f"--workdir={tmp_path / 'run'}", "--cpu_devices=2", "--config.train.num_steps=4",
       "--config.train.eval_every=4", "--config.data.eval_examples=64"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "; 2 devices;" in result.stderr, result.stderr[-3000:]
  assert (tmp_path / "run" / "metrics.json").exists()
