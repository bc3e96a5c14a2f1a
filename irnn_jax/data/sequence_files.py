"""Readers for sequences users bring: .npz arrays and UCR/UEA .ts files (numpy only).

Each reader checks what it reads and returns `Sequences` per split, or raises
`SequenceFileError` naming the array or file (and for .ts the line) and the
problem. Missing values (`?` in .ts, NaN in arrays) are an error unless
`fill` says how to fill them (FILL_MISSING).

The .ts reader is written here because the libraries that read the format
(sktime, aeon) bring pandas, numba and scikit-learn for what is one short parser.

.npz keys: x_train [N, T, C] (or [N, T]: one channel), y_train [N] (class
labels: integers or strings; regression targets: floats) or [N, K] (K
regression targets), optional len_train [N] (steps past a length are
padding); optional x_/y_/len_valid and x_/y_/len_test.
"""

import dataclasses
import re
import zipfile

import numpy as np

FILL_MISSING = ("", "zero", "forward")  # "": missing values are an error.
TASKS = ("auto", "classification", "regression")
SPLITS = ("train", "valid", "test")


class SequenceFileError(ValueError):
  """A sequence file or array that breaks its format."""


@dataclasses.dataclass
class Sequences:
  """One split: x[N, T, C] float32 (zero past each length), lengths[N] int32,
  labels[N] (str, int or float) or [N, K] (float); `where` names the source."""
  x: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  where: str


# Missing values.


def fill_missing(x: np.ndarray, lengths: np.ndarray, how: str) -> np.ndarray:
  """x[N, T, C] with NaN for missing values -> filled, zero past each length.

  zero: 0; forward: the channel's last value before, or its first value for
  leading gaps (0 where a channel has no value at all)."""
  if how not in FILL_MISSING[1:]:
    raise ValueError(f"fill_missing: unknown value {how!r}; choose from {FILL_MISSING}")
  steps = np.arange(x.shape[1])[None, :, None]
  valid = steps < lengths[:, None, None]
  x = np.where(valid, x, np.nan)
  if how == "forward":
    seen = ~np.isnan(x)
    last = np.maximum.accumulate(np.where(seen, steps, -1), axis=1)
    first = np.take_along_axis(x, np.argmax(seen, axis=1)[:, None, :], axis=1)
    x = np.where(last < 0, first, np.take_along_axis(x, np.maximum(last, 0), axis=1))
  return np.where(valid, np.nan_to_num(x, nan=0.0), 0.0).astype(np.float32)


def _missing_error(where: str, position: str) -> SequenceFileError:
  return SequenceFileError(
      f"{where}: missing value at {position}; fill_missing='zero' or 'forward' fills "
      "missing values (config.data.fill_missing)")


# Arrays.


def check_sequences(x, labels, lengths, names: tuple[str, str, str],
                    fill: str = "") -> Sequences:
  """Checked `Sequences` from x[N, T(, C)], labels[N(, K)] and lengths[N] or None;
  `names` name the three arrays in messages (e.g. "f.npz: x_train", ...)."""
  x_name, y_name, len_name = names
  x, labels = np.asarray(x), np.asarray(labels)
  if x.dtype.kind not in "biuf":  # Not complex: casting would drop the imaginary part.
    raise SequenceFileError(f"{x_name}: inputs must be real numbers, got dtype {x.dtype}")
  if x.ndim == 2:
    x = x[:, :, None]
  if x.ndim != 3:
    raise SequenceFileError(f"{x_name}: expected rank 3 [N, T, C] or 2 [N, T], got "
                            f"shape {x.shape}")
  n, width = x.shape[:2]
  if 0 in x.shape:
    raise SequenceFileError(f"{x_name}: no examples, steps or channels (shape {x.shape})")
  if labels.ndim not in (1, 2):
    raise SequenceFileError(f"{y_name}: expected rank 1 [N] or 2 [N, K], got shape "
                            f"{labels.shape}")
  if len(labels) != n:
    raise SequenceFileError(f"{y_name}: {len(labels)} labels for the {n} examples of "
                            f"{x_name}")
  lengths = np.full(n, width) if lengths is None else np.asarray(lengths)
  if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
    raise SequenceFileError(f"{len_name}: expected integers of shape ({n},), got "
                            f"{lengths.dtype} {lengths.shape}")
  if len(lengths) != n:
    raise SequenceFileError(f"{len_name}: {len(lengths)} lengths for the {n} examples of "
                            f"{x_name}")
  bad = np.flatnonzero((lengths < 1) | (lengths > width))
  if len(bad):
    raise SequenceFileError(f"{len_name}: example {bad[0]} has length {lengths[bad[0]]}; "
                            f"lengths must be in [1, {width}] (T of {x_name})")
  x = x.astype(np.float64)
  valid = np.arange(width)[None, :, None] < lengths[:, None, None]
  if (np.isinf(x) & valid).any():
    i, t, c = np.argwhere(np.isinf(x) & valid)[0]
    raise SequenceFileError(f"{x_name}: an infinite value at example {i}, step {t}, "
                            f"channel {c}")
  if not fill and (np.isnan(x) & valid).any():
    i, t, c = np.argwhere(np.isnan(x) & valid)[0]
    raise _missing_error(x_name, f"example {i}, step {t}, channel {c} (NaN)")
  x = fill_missing(x, lengths, fill) if fill else np.where(valid, x, 0.0).astype(np.float32)
  return Sequences(x, lengths.astype(np.int32), labels, x_name)


def read_npz(path: str, fill: str = "") -> dict[str, Sequences]:
  """The splits of a .npz file (see the module docstring): always "train"."""
  known = {f"{p}_{s}" for p in ("x", "y", "len") for s in SPLITS}
  try:
    opened = np.load(path, allow_pickle=False)
    if not isinstance(opened, np.lib.npyio.NpzFile):
      raise SequenceFileError(f"{path}: one .npy array, not a .npz file of named arrays "
                              "(write one with np.savez)")
    with opened as arrays:
      unknown = sorted(set(arrays.files) - known)
      if unknown:
        raise SequenceFileError(f"{path}: unknown arrays {unknown}; expected "
                                "x_SPLIT, y_SPLIT and optional len_SPLIT for SPLIT in "
                                f"{SPLITS}")
      loaded = {key: arrays[key] for key in arrays.files}
  except ValueError as e:
    if isinstance(e, SequenceFileError):
      raise
    raise SequenceFileError(f"{path}: cannot read it as .npz arrays without pickle "
                            f"(save strings as a numpy str array, not objects): {e}") from e
  except (zipfile.BadZipFile, EOFError) as e:
    raise SequenceFileError(f"{path}: not a readable .npz file: {e}") from e
  splits = {}
  for split in SPLITS:
    x_key, y_key, len_key = f"x_{split}", f"y_{split}", f"len_{split}"
    present = [k for k in (x_key, y_key, len_key) if k in loaded]
    if not present:
      continue
    for key in (x_key, y_key):
      if key not in loaded:
        raise SequenceFileError(f"{path}: has {', '.join(present)} but no {key}")
    labels = loaded[y_key]
    if labels.dtype.kind == "S":
      labels = np.char.decode(labels, "utf-8")
    splits[split] = check_sequences(loaded[x_key], labels, loaded.get(len_key),
                                    (f"{path}: {x_key}", f"{path}: {y_key}",
                                     f"{path}: {len_key}"), fill)
  if "train" not in splits:
    raise SequenceFileError(f"{path}: no x_train and y_train arrays")
  return splits


# Labels.


def infer_task(labels: np.ndarray, task: str, where: str) -> str:
  """classification or regression: `task` unless "auto", then strings, integers
  and booleans mean classes, floats regression targets."""
  if task not in TASKS:
    raise ValueError(f"task: unknown value {task!r}; choose from {TASKS}")
  kind = labels.dtype.kind
  if task == "auto":
    task = "regression" if kind in "fc" else "classification"
  if task == "regression" and kind not in "iufb":
    raise SequenceFileError(f"{where}: regression targets must be numbers, got "
                            f"{labels.dtype}")
  if task == "classification" and labels.ndim != 1:
    raise SequenceFileError(f"{where}: class labels must have shape (N,), got "
                            f"{labels.shape}")
  return task


def label_names(labels: np.ndarray, where: str) -> np.ndarray:
  """Labels[N] as str: integers (and whole floats) as their decimal digits."""
  if labels.dtype.kind == "f":
    if not np.all(np.isfinite(labels) & (labels == np.round(labels))):
      raise SequenceFileError(f"{where}: class labels given as floats must be whole "
                              "numbers")
    labels = labels.astype(np.int64)
  return labels.astype(str)


def _name_key(name: str):
  """Numeric names in numeric order (2 before 10), then the rest as strings."""
  try:
    return (0, int(name), name)
  except ValueError:
    return (1, 0, name)


def sorted_classes(names) -> tuple[str, ...]:
  return tuple(sorted(set(str(n) for n in names), key=_name_key))


def encode_labels(names: np.ndarray, classes: tuple[str, ...], where: str) -> np.ndarray:
  """int32 [N]: each name's index in `classes`."""
  index = {name: i for i, name in enumerate(classes)}
  codes = np.array([index.get(str(name), -1) for name in names], np.int32)
  if (codes < 0).any():
    first = str(names[int(np.argmax(codes < 0))])
    raise SequenceFileError(f"{where}: label {first!r} is not one of the training "
                            f"classes {list(classes)}")
  return codes


# .ts files.


@dataclasses.dataclass
class TsHeader:
  problem_name: str = ""
  timestamps: bool = False
  missing: bool | None = None
  univariate: bool | None = None
  dimensions: int | None = None
  equal_length: bool | None = None
  series_length: int | None = None
  class_labels: tuple[str, ...] | None = None  # None: @classLabel false or absent.
  target_label: bool = False


_BOOL_KEYS = {"timestamps": "timestamps", "missing": "missing", "univariate": "univariate",
              "equallength": "equal_length", "targetlabel": "target_label"}
_INT_KEYS = {"dimension": "dimensions", "dimensions": "dimensions",
             "serieslength": "series_length"}
_TUPLE = re.compile(r"\(([^(),]*),([^()]*)\)")


def _header_line(header: TsHeader, tokens: list[str], where: str, seen: set):
  key, values = tokens[0][1:].lower(), tokens[1:]
  if key in seen or (key in _INT_KEYS and _INT_KEYS[key] in seen):
    raise SequenceFileError(f"{where}: {tokens[0]} given twice")
  seen.update((key, _INT_KEYS.get(key, key)))
  if key == "problemname":
    header.problem_name = " ".join(values)
    return
  if key not in _BOOL_KEYS and key not in _INT_KEYS and key != "classlabel":
    raise SequenceFileError(f"{where}: unknown header key {tokens[0]}; known: @problemName, "
                            "@timeStamps, @missing, @univariate, @dimensions, @equalLength, "
                            "@seriesLength, @classLabel, @targetLabel, @data")
  flag = values[0].lower() if values else ""
  if key in _INT_KEYS:
    if len(values) != 1 or not values[0].isdigit() or int(values[0]) < 1:
      raise SequenceFileError(f"{where}: {tokens[0]} needs one positive integer, got "
                              f"{' '.join(values)!r}")
    setattr(header, _INT_KEYS[key], int(values[0]))
    return
  if flag not in ("true", "false") or (len(values) > 1 and key != "classlabel"):
    raise SequenceFileError(f"{where}: {tokens[0]} must be true or false, got "
                            f"{' '.join(values)!r}")
  if key != "classlabel":
    setattr(header, _BOOL_KEYS[key], flag == "true")
  elif flag == "false":
    if len(values) > 1:
      raise SequenceFileError(f"{where}: @classLabel false lists labels {values[1:]}")
  else:
    labels = tuple(values[1:])
    if len(set(labels)) < 2:
      raise SequenceFileError(f"{where}: @classLabel true lists {len(set(labels))} "
                              "class(es); classification needs at least two")
    header.class_labels = labels


def _split_top(text: str, sep: str) -> list[str]:
  """`text` split at `sep` outside parentheses (timestamps hold ':' and ',')."""
  parts, depth, start = [], 0, 0
  for i, char in enumerate(text):
    depth += (char == "(") - (char == ")")
    if char == sep and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  return parts + [text[start:]]


def _channel_values(text: str, timestamps: bool, where: str) -> list[str]:
  """The value tokens of one channel; with timestamps "(t,v),(t,v)" -> [v, v]."""
  if not timestamps:
    return [v.strip() for v in text.split(",")]
  values = []
  for item in _split_top(text, ","):
    match = _TUPLE.fullmatch(item.strip())
    if not match:
      raise SequenceFileError(f"{where}: {item.strip()!r} is not a (timestamp,value) pair "
                              "(@timeStamps true)")
    values.append(match.group(2).strip())
  return values


def _parse_value(token: str, where: str) -> float:
  if token == "?":
    return np.nan
  try:
    value = float(token)
  except ValueError:
    raise SequenceFileError(f"{where}: {token!r} is not a number") from None
  if np.isinf(value):
    raise SequenceFileError(f"{where}: an infinite value")
  return value


def _parse_case(line: str, header: TsHeader, where: str):
  """(channels: list of float lists, label str) of one data line."""
  parts = _split_top(line, ":")
  if len(parts) < 2:
    raise SequenceFileError(f"{where}: no label after the last ':'")
  label = parts.pop().strip()
  channels = []
  for c, text in enumerate(parts):
    tokens = _channel_values(text, header.timestamps, where)
    if tokens == [""]:
      raise SequenceFileError(f"{where}: channel {c} has no values")
    channels.append([_parse_value(t, f"{where}, channel {c}, step {s}")
                     for s, t in enumerate(tokens)])
  return channels, label


def _check_case(channels, label, header: TsHeader, first, where: str):
  """Raise where a case disagrees with the header or the first case."""
  sizes = [len(c) for c in channels]
  dims = header.dimensions or (1 if header.univariate else None)
  if dims is not None and len(channels) != dims:
    said = f"@dimensions {header.dimensions}" if header.dimensions else "@univariate true"
    raise SequenceFileError(f"{where}: {len(channels)} channels, but the header says {said}")
  if header.univariate is False and len(channels) == 1 and not header.dimensions:
    raise SequenceFileError(f"{where}: 1 channel, but the header says @univariate false")
  if first is not None and len(channels) != first[0]:
    raise SequenceFileError(f"{where}: {len(channels)} channels, but line {first[2]} has "
                            f"{first[0]}")
  if len(set(sizes)) > 1:
    raise SequenceFileError(f"{where}: channels of {sizes} values; the channels of one "
                            "case must have one length")
  length = sizes[0]
  if header.equal_length and first is not None and length != first[1]:
    raise SequenceFileError(f"{where}: {length} values per channel, but @equalLength true "
                            f"and line {first[2]} has {first[1]}")
  if header.series_length:
    if header.equal_length is False and length > header.series_length:
      raise SequenceFileError(f"{where}: {length} values per channel, more than "
                              f"@seriesLength {header.series_length}")
    if header.equal_length is not False and length != header.series_length:
      raise SequenceFileError(f"{where}: {length} values per channel, but @seriesLength "
                              f"{header.series_length}")
  if header.class_labels is not None and label not in header.class_labels:
    raise SequenceFileError(f"{where}: label {label!r} is not in @classLabel "
                            f"{list(header.class_labels)}")
  missing = any(np.isnan(v) for c in channels for v in c)
  if missing and header.missing is False:
    raise SequenceFileError(f"{where}: a missing value '?', but the header says @missing false")
  return missing


def parse_ts(lines, path: str, fill: str = "") -> tuple[TsHeader, Sequences]:
  """The header and cases of a .ts file's lines (see read_ts)."""
  header, seen, cases, first, in_data = TsHeader(), set(), [], None, False
  for number, raw in enumerate(lines, 1):
    line, where = raw.strip(), f"{path}, line {number}"
    if not line or line.startswith("#"):
      continue
    if not in_data:
      if not line.startswith("@"):
        raise SequenceFileError(f"{where}: data before the @data line (or a header line "
                                "without '@')")
      tokens = line.split()
      if tokens[0].lower() != "@data":
        _header_line(header, tokens, where, seen)
        continue
      if header.class_labels is not None and header.target_label:
        raise SequenceFileError(f"{where}: both @classLabel true and @targetLabel true")
      if header.class_labels is None and not header.target_label:
        raise SequenceFileError(f"{where}: no labels (@classLabel false or absent, no "
                                "@targetLabel true): training needs a label per case")
      in_data = True
      continue
    if line.startswith("@"):
      raise SequenceFileError(f"{where}: a header line after @data")
    channels, label = _parse_case(line, header, where)
    if _check_case(channels, label, header, first, where) and not fill:
      c, s = next((c, s) for c, ch in enumerate(channels) for s, v in enumerate(ch)
                  if np.isnan(v))
      raise _missing_error(where, f"channel {c}, step {s} ('?')")
    if first is None:
      first = (len(channels), len(channels[0]), number)
    if header.target_label:
      label = _parse_value(label, f"{where}, target")
      if np.isnan(label):
        raise SequenceFileError(f"{where}: the target is missing")
    cases.append((channels, label))
  if not in_data:
    raise SequenceFileError(f"{path}: no @data line (the header must end with @data)")
  if not cases:
    raise SequenceFileError(f"{path}: no cases after @data")
  lengths = np.array([len(ch[0]) for ch, _ in cases], np.int32)
  x = np.zeros((len(cases), lengths.max(), first[0]))
  for i, (channels, _) in enumerate(cases):
    x[i, :lengths[i]] = np.array(channels).T
  x = fill_missing(x, lengths, fill) if fill else x.astype(np.float32)
  labels = np.array([label for _, label in cases],
                    np.float64 if header.target_label else str)
  return header, Sequences(x, lengths, labels, path)


def read_ts(path: str, fill: str = "") -> tuple[TsHeader, Sequences]:
  """A UCR/UEA .ts file: header lines (@problemName, @timeStamps, @missing,
  @univariate, @dimensions, @equalLength, @seriesLength, @classLabel,
  @targetLabel), '#' comments, @data, then one case per line: channels split
  by ':', values by ',', the label last, '?' a missing value. With
  @timeStamps true values are (timestamp,value) pairs; the timestamps are
  dropped and the values keep the file's order."""
  with open(path, encoding="utf-8") as f:
    return parse_ts(f, path, fill)


def write_ts(path: str, seqs: Sequences, problem_name: str, classes=None):
  """Write `seqs` (string class labels, or float targets if classes is None)."""
  n, _, channels = seqs.x.shape
  equal = len(set(seqs.lengths.tolist())) == 1
  lines = [f"@problemName {problem_name}", "@timeStamps false", "@missing false",
           f"@univariate {str(channels == 1).lower()}", f"@dimensions {channels}",
           f"@equalLength {str(equal).lower()}"]
  if equal:
    lines.append(f"@seriesLength {seqs.lengths[0]}")
  lines.append(f"@classLabel true {' '.join(classes)}" if classes is not None
               else "@targetLabel true")
  lines.append("@data")
  for i in range(n):
    steps = seqs.x[i, :seqs.lengths[i]]
    fields = [",".join(f"{v:.6g}" for v in steps[:, c]) for c in range(channels)]
    lines.append(":".join(fields + [str(seqs.labels[i])]))
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
