"""Keep freed host memory for reuse, so CPU training steps do not page-fault.

XLA's CPU runtime mallocs a training step's temporary buffers (tens to
hundreds of MB) and frees them when the step ends. glibc hands large freed
blocks back to the kernel (blocks over its mmap threshold, per-thread arenas,
heap trimming), so the next step faults every page back in. On the 2-core
benchmark machine that was 25-30 thousand page faults and about 40 ms of
system time per sequential-MNIST step. PyTorch's CPU steps pay the same.

The fix is three glibc malloc settings: one arena, no mmap for large blocks,
no trimming. The process then keeps its peak heap for its lifetime. They must
be set before JAX starts its thread pool (before the first computation or
device query), or threads keep the arenas they already have.
"""

import ctypes
import sys

# mallopt parameters (glibc malloc.h) and the values we set.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_NEVER_TRIM = -1  # mallopt: -1 turns trimming off.
SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))

# The same settings as environment variables, read by glibc when a process
# starts: for child processes and for scripts that do not call this module.
ENVIRONMENT = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0",
               "MALLOC_TRIM_THRESHOLD_": str(_NEVER_TRIM)}


def keep_freed_memory() -> bool:
  """Sets glibc's malloc to reuse freed memory. Returns whether it applied:
  False, changing nothing, where the C library is not glibc (macOS, musl)."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
    libc.gnu_get_libc_version  # Only glibc has it.
  except (OSError, AttributeError):
    return False
  return all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)
