"""host_memory.keep_freed_memory: a freed large block is reused, not re-faulted."""

import os
import platform
import subprocess
import sys

import pytest

from irnn_jax import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Mallocs, fills and frees a 64 MB block three times; prints the page faults
# of the last two fills. Without the settings glibc maps each such block
# afresh (16384 faults of 4 KiB pages per fill); with them the freed block is
# reused and its pages are already there.
SCRIPT = """
import ctypes, resource, sys
from irnn_jax import host_memory
if sys.argv[1] == "keep":
  assert host_memory.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 64 << 20
faults = []
for _ in range(3):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(ctypes.c_size_t(size))
  ctypes.memset(block, 1, size)
  libc.free(ctypes.c_void_p(block))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""

PAGES = (2 * (64 << 20)) // 4096  # Pages filled after the first fill.
pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="glibc malloc settings")


def _faults_after_first_fill(mode: str, env=None) -> int:
  env = dict(os.environ, **(env or {}))
  done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=env,
                        check=True, capture_output=True, text=True)
  return int(done.stdout.strip())


@pytest.mark.slow
def test_freed_block_is_refaulted_by_default():
  assert _faults_after_first_fill("default") > PAGES // 2


@pytest.mark.slow
def test_keep_freed_memory_reuses_the_block():
  assert _faults_after_first_fill("keep") < PAGES // 100


@pytest.mark.slow
def test_environment_variables_do_the_same():
  assert _faults_after_first_fill("default", host_memory.ENVIRONMENT) < PAGES // 100
