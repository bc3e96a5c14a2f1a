"""Data parallelism with `jax.sharding`: the batch is split over all devices,
the train state is replicated, and `jit` inserts the gradient all-reduce."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh() -> Mesh:
  return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """Put numpy arrays [B, ...] on the mesh, split along B."""
  sharding = batch_sharded(mesh)
  return {k: jax.device_put(v, sharding) for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))


def check_divisible(batch_size: int, field: str, mesh: Mesh):
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"config.{field}={batch_size} is not divisible by the "
                     f"{n} devices of the data mesh")
