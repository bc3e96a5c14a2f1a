"""Sweeps: lists of config overrides, their directory names, and applying them.

A sweep is a list of override dicts from dotted field names to values, e.g.
`[{"data.seq_len": 100}, {"data.seq_len": 500}]`. The special key "variant"
picks the config variant (the part after ":" in --config) for that point.
Seeds are an axis like any field ("seed"); `over_seeds` repeats every point.
Config files declare their sweeps in `get_sweep(name)`; experiments/sweep.py
runs them.
"""

import difflib
import hashlib
import itertools
import json
import re

import ml_collections

VARIANT = "variant"  # Not a config field: the variant passed to get_config.
SEED = "seed"  # The config field that seeds parameters, data and dropout.
MAX_NAME_LEN = 120


def _fields(fields, more) -> dict:
  fields = {**(fields or {}), **more}
  for key, values in fields.items():
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
      raise TypeError(f"sweep field {key!r} needs a list of values, got {values!r}")
  return {key: list(values) for key, values in fields.items()}


def product(fields: dict | None = None, **more) -> list[dict]:
  """Every combination of the values; the last field varies fastest.

  product({"data.seq_len": [100, 500]}, variant=["irnn", "lstm"])
  """
  fields = _fields(fields, more)
  return [dict(zip(fields, values)) for values in itertools.product(*fields.values())]


def zip_fields(fields: dict | None = None, **more) -> list[dict]:
  """The i-th point takes the i-th value of every field (equal lengths)."""
  fields = _fields(fields, more)
  lengths = {key: len(values) for key, values in fields.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zip_fields needs lists of equal length, got {lengths}")
  return [dict(zip(fields, values)) for values in zip(*fields.values())]


def over_seeds(points: list[dict], seeds) -> list[dict]:
  """Every point once per seed, the seeds of a point next to each other.

  over_seeds([{"variant": "irnn"}], (0, 1)) ==
      [{"variant": "irnn", "seed": 0}, {"variant": "irnn", "seed": 1}]
  """
  seeds = list(seeds)
  if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
    raise TypeError(f"over_seeds needs a list of int seeds, got {seeds!r}")
  if len(set(seeds)) < len(seeds):
    raise ValueError(f"over_seeds: repeated seeds in {seeds}")
  if any(SEED in point for point in points):
    raise ValueError(f"the sweep already has a {SEED!r} axis")
  return [{**point, SEED: seed} for point in points for seed in seeds]


def short_keys(keys) -> list[str]:
  """Last part of each dotted key, or the whole key where that part repeats."""
  last = [key.rsplit(".", 1)[-1] for key in keys]
  return [s if last.count(s) == 1 else key for s, key in zip(last, keys)]


def point_name(overrides: dict) -> str:
  """A stable, filesystem-safe directory name, e.g. "variant=lstm,seq_len=100"."""
  if not overrides:
    return "default"
  parts = [f"{key}={value}" for key, value in zip(short_keys(overrides), overrides.values())]
  name = re.sub(r"[^A-Za-z0-9._+=,-]", "_", ",".join(parts))
  if len(name) > MAX_NAME_LEN:
    digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode())
    name = f"{name[:MAX_NAME_LEN - 9]}-{digest.hexdigest()[:8]}"
  return name


def _suggest(part: str, node) -> str:
  if not isinstance(node, ml_collections.ConfigDict):
    return ""
  close = difflib.get_close_matches(part, list(node), n=3)
  if close:
    return f"; did you mean {' or '.join(map(repr, close))}?"
  return f"; it has {sorted(node)}"


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict) -> None:
  """Set each dotted field of `config`; a field that does not exist raises ValueError."""
  for key, value in overrides.items():
    if key == VARIANT:
      continue
    node, path = config, "config"
    for part in key.split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ValueError(f"unknown config field {key!r}: {path} has no field {part!r}"
                         + _suggest(part, node))
      parent, node, path = node, node[part], f"{path}.{part}"
    try:
      parent[part] = value
    except TypeError as e:
      raise TypeError(f"{path}: {e}") from e


def flag_value(value) -> str:
  """The command-line form of a value, for --config.FIELD=VALUE."""
  if isinstance(value, str):
    return value
  return repr(value.item() if hasattr(value, "item") else value)
