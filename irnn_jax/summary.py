"""TensorBoard scalars without TensorFlow: a writer (tensorboardX) and a reader.

The reader honours the restart markers the writer leaves when a run resumes
(`purge_step`), so a resumed run reads as one continuous curve.
"""

import glob
import os
import struct

from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2


class MetricWriter:
  """Writes scalar dicts as TensorBoard events under `logdir`; writes nothing
  when not `active` (every process but the first of a multi-process run)."""

  def __init__(self, logdir: str, start_step: int = 0, active: bool = True):
    # On resume, TensorBoard hides what the crashed run logged after the checkpoint.
    self._writer = SummaryWriter(
        logdir, purge_step=start_step + 1 if start_step else None,
        flush_secs=10) if active else None

  def write_scalars(self, step: int, scalars: dict[str, float]):
    for tag, value in scalars.items():
      if self._writer:
        self._writer.add_scalar(tag, float(value), global_step=step)

  def flush(self):
    if self._writer:
      self._writer.flush()

  def close(self):
    if self._writer:
      self._writer.close()


def _records(path: str):
  """Payloads of a TFRecord file (length, crc, data, crc), CRCs not checked."""
  with open(path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      (length,) = struct.unpack("<Q", header[:8])
      data = f.read(length)
      f.read(4)
      if len(data) < length:
        return  # A record cut short by a killed writer.
      yield data


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float, float]]]:
  """tag -> [(step, wall_time, value)] sorted by step, over all event files in
  `logdir`, with points hidden by a later restart removed."""
  events = []
  for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
    for record in _records(path):
      event = event_pb2.Event()
      event.ParseFromString(record)
      events.append(event)
  events.sort(key=lambda e: e.wall_time)
  scalars: dict[str, dict[int, tuple[float, float]]] = {}
  for event in events:
    if event.HasField("session_log") and event.session_log.status == event.session_log.START:
      for points in scalars.values():
        for step in [s for s in points if s >= event.step]:
          del points[step]
    if event.HasField("summary"):
      for value in event.summary.value:
        if value.HasField("simple_value"):
          scalars.setdefault(value.tag, {})[event.step] = (event.wall_time,
                                                           value.simple_value)
  return {tag: sorted((s, w, v) for s, (w, v) in points.items())
          for tag, points in scalars.items()}
