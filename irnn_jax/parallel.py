"""Data parallelism with `jax.sharding`: the batch is split over all devices
and the train state is replicated. With more than one device the training
step maps the forward and backward pass over the devices (`shard_map`): each
device runs its own rows, batch-norm statistics and gradients are summed over
the devices, and no device needs another's activations.

Several processes (hosts) work the same way after `initialize`: the mesh spans
the devices of every process, and each process puts only its own rows of each
batch on its own devices (`shard_batch`).
"""

import jax
from jax.experimental import multihost_utils
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh() -> Mesh:
  return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def set_cpu_devices(count: int):
  """Split the CPU into `count` JAX devices (one per core is fastest for the
  data-parallel step: XLA runs one device's time loops on one core, so one
  device leaves the other cores idle through the loops). Call before JAX
  starts its CPU backend; 1 leaves JAX's default."""
  if count < 1:
    raise ValueError(f"cpu devices must be at least 1, got {count}")
  if count > 1:
    jax.config.update("jax_num_cpu_devices", count)


def mapped_over_data() -> bool:
  """Whether the caller runs inside the per-device map of the training step,
  where arrays hold only this device's rows of the batch."""
  mesh = jax.sharding.get_abstract_mesh()
  return not mesh.empty and DATA_AXIS in mesh.manual_axes


def sum_over_devices(tree):
  """Sum over the devices of the per-device map; unchanged outside it."""
  return jax.lax.psum(tree, DATA_AXIS) if mapped_over_data() else tree


def data_devices() -> int:
  """How many devices share the batch inside the per-device map (else 1)."""
  return jax.lax.axis_size(DATA_AXIS) if mapped_over_data() else 1


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1):
  """Join a multi-process run (`jax.distributed.initialize`). Give all three
  arguments to launch by hand (e.g. two processes on one machine); give none
  where JAX finds them itself (Cloud TPU, SLURM, Open MPI)."""
  explicit = {}
  if coordinator_address:
    explicit["coordinator_address"] = coordinator_address
  if num_processes:
    explicit["num_processes"] = num_processes
  if process_id >= 0:
    explicit["process_id"] = process_id
  jax.distributed.initialize(**explicit)


def is_main_process() -> bool:
  """Process 0 writes the logs, metrics and config files."""
  return jax.process_index() == 0


def value_of_main_process(value):
  """Process 0's `value` (a host scalar or array) in every process: for what
  each process measures itself, such as wall time, but all must agree on."""
  if jax.process_count() == 1:
    return value
  return multihost_utils.broadcast_one_to_all(np.asarray(value)).item()


def process_rows(array: np.ndarray) -> np.ndarray:
  """This process's contiguous share of the rows of a global batch."""
  rows = array.shape[0] // jax.process_count()
  start = jax.process_index() * rows
  return array[start:start + rows]


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """Global numpy arrays [B, ...] -> arrays on the mesh, split along B; each
  process transfers only its own rows (the mesh lists devices by process)."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, process_rows(v), v.shape)
          for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))


def check_divisible(batch_size: int, field: str, mesh: Mesh):
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"config.{field}={batch_size} is not divisible by the "
                     f"{n} devices of the data mesh")
