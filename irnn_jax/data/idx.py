"""Reader for the IDX format of the MNIST files (LeCun et al.).

An IDX file is: two zero bytes, one byte naming the element type, one byte
giving the number of dimensions n, then n sizes as big-endian uint32, then the
elements in row-major order, big-endian.
"""

import gzip
import struct
import zlib

import numpy as np

# Element-type byte -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: ">u1",  # unsigned byte
    0x09: ">i1",  # signed byte
    0x0B: ">i2",  # short
    0x0C: ">i4",  # int
    0x0D: ">f4",  # float
    0x0E: ">f8",  # double
}


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
  """The array held by the IDX bytes `raw`, in native byte order.

  Raises ValueError, naming `name`, when the header or the size is wrong.
  """
  if len(raw) < 4:
    raise ValueError(f"{name}: {len(raw)} bytes is too short for an IDX header")
  if raw[0] != 0 or raw[1] != 0:
    raise ValueError(f"{name}: bad IDX magic number 0x{raw[:4].hex()}; an IDX "
                     "file starts with two zero bytes")
  code, ndim = raw[2], raw[3]
  if code not in IDX_DTYPES:
    raise ValueError(f"{name}: unknown IDX element type 0x{code:02x} in magic "
                     f"number 0x{raw[:4].hex()}; known: "
                     f"{[f'0x{c:02x}' for c in IDX_DTYPES]}")
  data_start = 4 + 4 * ndim
  if len(raw) < data_start:
    raise ValueError(f"{name}: truncated IDX header ({ndim} dimensions need "
                     f"{data_start} bytes, got {len(raw)})")
  shape = struct.unpack(f">{ndim}I", raw[4:data_start])
  dtype = np.dtype(IDX_DTYPES[code])
  count = int(np.prod(shape, dtype=np.int64))
  expected = count * dtype.itemsize
  if len(raw) - data_start != expected:
    raise ValueError(f"{name}: the header gives shape {shape} of {dtype.name} "
                     f"({expected} data bytes) but the file holds "
                     f"{len(raw) - data_start} data bytes")
  array = np.frombuffer(raw, dtype, count=count, offset=data_start)
  return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: str) -> np.ndarray:
  """Read an IDX file, gzip-compressed when `path` ends in ".gz"."""
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        raw = f.read()
    else:
      with open(path, "rb") as f:
        raw = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise ValueError(f"{path}: not a complete gzip file ({e})") from e
  return parse_idx(raw, path)
