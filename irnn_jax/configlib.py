"""The base config every experiment starts from, and its validation.

Experiment files in `configs/` call `base_config()` and change what differs.
`validate(config)` runs at the start of training and names the bad field.
"""

import json

import ml_collections

from irnn_jax import cells, layers, models
from irnn_jax.data import sequence_files

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "plateau")
SELECT_MODES = ("auto", "min", "max")
# Fields of config.model before each cell's options moved to config.model.cells:
# old name -> name in the section of every cell that has it.
_OLD_CELL_FIELDS = {
    "identity_scale": "identity_scale", "recurrent_init": "recurrent_init",
    "recurrent_std": "recurrent_std", "forget_bias": "forget_bias", "u_init": "u_init",
    "u_low": "u_low", "u_high": "u_high", "u_value": "u_value",
    "u_max_magnitude": "max_magnitude", "u_min": "min_magnitude",
    "last_layer_u": "last_layer_u", "last_layer_u_eps": "last_layer_u_eps",
}


def _upgrade(saved: dict) -> dict:
  """A config.json written before config.model.cells, in today's layout."""
  model = saved.get("model", {})
  if "cells" in model:
    return saved
  model = dict(model)
  sections = {name: {} for name in cells.names()}
  for old, new in _OLD_CELL_FIELDS.items():
    if old in model:
      value = model.pop(old)
      for name, section in sections.items():
        if new in cells.get(name).option_names():
          section[new] = value
  activation = model.pop("activation", "")
  if activation and "activation" in cells.get(model.get("cell", "indrnn")).option_names():
    sections[model.get("cell", "indrnn")]["activation"] = activation
  model["cells"] = sections
  return {**saved, "model": model}


def load_saved(path: str) -> ml_collections.ConfigDict:
  """A run's config.json over base_config(): fields added to the code after
  the run was written take their defaults, so older runs still load."""
  with open(path) as f:
    saved = _upgrade(json.load(f))
  config = base_config()
  config.update(saved)
  return config


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  d = c.data = ml_collections.ConfigDict()
  d.name = "adding"  # adding | arrays | hdf5 | mnist | ptb | tfds_image | ts (irnn_jax.data.BUILDERS)
  d.dir = ""  # mnist, ptb, hdf5: the data files; a relative path is from the current directory.
  # Time steps per sequence: the adding problem's T, a language model's window.
  # mnist and images fix their own (from view, patch_size, pad_to): 0 takes it,
  # another value must equal it.
  d.seq_len = 100
  d.batch_size = 50  # Training sequences per step (parallel streams for ptb).
  d.eval_batch_size = 500
  d.eval_examples = 1000  # Per evaluation split (adding, mnist, images, arrays, ts); 0 = all of it.
  # mnist and tfds_image.
  d.source = "auto"  # mnist: auto (IDX files in dir, else TFDS) | files | tfds
  d.tfds_name = ""  # tfds_image: the TFDS data set, e.g. "cifar10".
  d.tfds_data_dir = ""  # "" = the TFDS default data dir.
  d.train_split = "train"  # tfds_image: any TFDS split string, e.g. "train[:50%]".
  d.test_split = "test"
  d.view = "pixels"  # mnist: pixels | permuted | patches | rows | image
  d.patch_size = 7  # mnist patches: pixels per step, a divisor of 784.
  d.pad_to = 0  # Images: zero-pad to pad_to x pad_to; 0 = as they are.
  d.permutation_seed = 0  # mnist permuted: the fixed pixel order.
  # unit [0, 1] | symmetric [-1, 1] | inverted (1 - 2 x / 255: 255 -> -1, 0 -> 1)
  # | standardize (per pixel or channel)
  d.normalize = "unit"
  d.min_std = 0.1  # standardize (mnist): a pixel's std, in units of [0, 1], is at least this.
  d.train_examples = 0  # mnist: only the first N images of the training file; 0 = all.
  d.pixel_tokens = False  # mnist pixels / permuted: each pixel value a token id (an embedding of 256).
  # hdf5: neon-layout files in dir (irnn_jax/data/hdf5_images.py).
  d.train_file = "train.h5"
  d.test_file = "test.h5"
  d.subtract_mean = True  # Subtract the file's "mean" dataset where it has one.
  d.input_scale = 1.0  # Inputs are (input - mean) * input_scale.
  d.validation_size = 5000  # Held out of the training set as "valid"; 0 = none.
  d.validation_split = "last"  # last | random (fixed by config.seed)
  # ptb.
  d.level = "char"  # char | word
  d.random_offset = False  # Start each epoch at a random token in [0, T).
  # arrays (.npz) and ts (UCR/UEA .ts): one's own sequences (irnn_jax/data/sequences.py).
  d.path = ""  # arrays: the .npz file (x_train, y_train, optional len_train, *_valid, *_test).
  d.train_path = ""  # ts: the training .ts file.
  d.valid_path = ""  # ts: a validation .ts file; "" = carve valid_fraction of train.
  d.test_path = ""  # ts: a test .ts file; "" = no test split.
  d.task = "auto"  # auto (str or int labels: classification, floats: regression) | classification | regression
  d.valid_fraction = 0.1  # Of train held out as "valid" (fixed by seed) when no valid split is given; 0 = none.
  d.fill_missing = ""  # Missing values (.ts "?", NaN): "" = an error | zero | forward (last value seen)
  d.standardize = True  # Per channel: mean and std over the valid steps of the training split.

  m = c.model = ml_collections.ConfigDict()
  m.arch = "recurrent"  # recurrent (a stack with a readout) | renet (images)
  m.cell = "indrnn"  # A registered cell: irnn_jax.cells.names().
  # Each cell's own hyperparameters, with the defaults its class declares:
  # config.model.cells.indrnn.max_magnitude, config.model.cells.irnn.identity_scale, ...
  m.cells = ml_collections.ConfigDict(
      {name: cells.get(name).default_options() for name in cells.names()})
  m.hidden_size = 128
  m.num_layers = 2
  m.connection = "plain"  # plain | residual | dense
  m.block_size = 2  # Layers per residual or dense block.
  m.bidirectional = False
  m.norm = "none"  # none | sequence (stats over time and batch) | per_step
  m.norm_position = "post"  # pre: on W x, before the activation; post: on h.
  m.dropout = 0.0  # One mask per sequence, shared over time.
  m.pooling = "last"  # One output per sequence: last (its last valid step) | mean (over its valid steps)
  m.input_init = "normal"  # Input kernels: normal (N(0, input_std)) | glorot
  m.input_std = 0.001
  m.embed_size = 0  # Language models: 0 -> hidden_size.
  m.unroll = 1  # Time steps per loop iteration (lax.scan unroll).
  m.remat = False  # LSTM and GRU with unroll > 1: recompute each scan step in
  # the backward pass, so only the state is stored per step, not the gates. At
  # unroll 1 every cell's backward pass is hand-written: IndRNN, IRNN and tanh
  # RNN store only h, LSTM and GRU the state and gates (less than with remat).
  # arch = "renet" (spatial.py): the conv stem and the spatial RNN blocks.
  m.conv_channels = (32, 64)  # Stem: a conv, batch norm, relu and pool each.
  m.conv_kernel = 3
  m.conv_dilation = 1  # Padding is "same": dilation 2 pads 3x3 convs by 2.
  m.conv_order = "norm_relu"  # norm_relu (conv without bias) | relu_norm (conv with bias)
  m.conv_init = "lecun"  # lecun (flax's default) | kaiming (N(0, 2 / fan_in))
  m.input_norm = False  # Batch norm on the images before the stem.
  m.pool = 2  # Max-pool stride after each stem conv; 1 = none.
  m.pool_window = 0  # Max-pool window; 0 = the stride.
  m.pool_padding = 0  # Max-pool padding on each side.
  m.pool_last_conv = True  # False: no pool after the last stem conv.
  m.classifier_padding = 0  # Zero-padding around the map before the 1x1 class conv.
  m.classifier_activation = "none"  # none | relu, after the 1x1 class conv.
  m.patch_sizes = (1, 1)  # One spatial block each: int or [ph, pw]; len = num_layers.
  m.block_hidden_sizes = ()  # Units per direction of each spatial block; () = hidden_size for all.

  o = c.optimizer = ml_collections.ConfigDict()
  o.name = "adam"  # sgd | adam | rmsprop
  o.learning_rate = 2e-4
  o.momentum = 0.0  # sgd and rmsprop.
  o.nesterov = False
  o.b1 = 0.9
  o.b2 = 0.999
  o.eps = 1e-8
  o.rmsprop_decay = 0.9
  o.rmsprop_eps_in_sqrt = True  # True: g / sqrt(v + eps) (optax); False: g / (sqrt(v) + eps).
  o.weight_decay = 0.0  # L2 on kernels only: never on u, biases or norms.
  o.clip_global_norm = 0.0  # 0 = off.
  o.clip_value = 0.0  # Elementwise clipping; 0 = off.

  s = c.schedule = ml_collections.ConfigDict()
  s.name = "constant"  # constant | step | plateau
  s.warmup_steps = 0
  s.decay_every = 1000  # step: lr *= decay_factor every decay_every steps.
  s.decay_factor = 0.1
  s.plateau_metric = "valid/loss"  # plateau: watched at every evaluation.
  s.plateau_patience = 5  # Evaluations without improvement before a cut.
  s.plateau_factor = 0.1
  s.plateau_min_scale = 1e-3
  # plateau: at each cut, go back to the parameters and batch-norm statistics of
  # the best evaluation (checkpoints_best/; needs train.select_metric = plateau_metric).
  s.plateau_restore_best = False

  t = c.train = ml_collections.ConfigDict()
  t.num_steps = 2000
  t.num_epochs = 0.0  # > 0: ceil(num_epochs * steps_per_epoch) steps, num_steps unused; 0 = off.
  t.log_every = 50
  t.eval_every = 500
  t.checkpoint_every = 500
  t.keep_checkpoints = 2
  t.max_nonfinite_in_row = 20  # Skipped non-finite updates before stopping.
  # Before each evaluation, replace the batch-norm running averages by the mean
  # statistics of this many recent training batches under the current parameters.
  t.precise_bn_batches = 0
  # True: each evaluation batch is normalised by its own batch-norm statistics
  # (its valid rows), not by the running averages.
  t.eval_batch_stats = False
  t.time_budget_minutes = 0.0  # Stop (evaluate, checkpoint) after this much training; 0 = off.
  t.select_metric = "valid/loss"  # Its best checkpoint goes to checkpoints_best/; "" = off.
  t.select_mode = "auto"  # auto (max for accuracy; min for loss, mse, bpc, perplexity) | min | max
  return c


def split_variant(variant: str, choices, experiment: str, others=()) -> tuple[str, bool]:
  """"NAME" or "NAME_paper" -> (NAME, whether the paper-sized setting is asked);
  `others`: the config file's variants of its own, named in the error."""
  name = variant.removesuffix("_paper")
  if name not in choices:
    also = f", or one of {tuple(others)}" if others else ""
    raise ValueError(f"unknown {experiment} variant {variant!r}; choose from "
                     f"{tuple(choices)} with an optional _paper suffix{also}")
  return name, variant.endswith("_paper")


def require_positive(cfg: ml_collections.ConfigDict, field: str, prefix: str):
  value = cfg[field]
  if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
    raise ValueError(f"config.{prefix}.{field} must be positive, got {value!r}")


def _require_choice(cfg, field: str, prefix: str, choices):
  if cfg[field] not in choices:
    raise ValueError(f"config.{prefix}.{field}: unknown value {cfg[field]!r}; "
                     f"choose from {tuple(choices)}")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raise ValueError naming the first bad field."""
  m, o, s, t = config.model, config.optimizer, config.schedule, config.train
  _require_choice(m, "arch", "model", models.ARCHS)
  _require_choice(m, "cell", "model", cells.names())
  if m.cell not in m.cells:
    raise ValueError(f"config.model.cells has no section for config.model.cell={m.cell!r} "
                     "(a cell registered after the config was made): add "
                     f"config.model.cells.{m.cell} = irnn_jax.cells.get({m.cell!r})"
                     ".default_options()")
  for name, options in m.cells.items():
    if name not in cells.names():
      raise ValueError(f"config.model.cells.{name}: no cell is registered as {name!r}; "
                       f"registered: {cells.names()}")
    cells.get(name).check_options(options, f"config.model.cells.{name}")
  _require_choice(m, "connection", "model", models.CONNECTIONS)
  _require_choice(m, "pooling", "model", models.POOLINGS)
  _require_choice(m, "norm", "model", layers.NORMS)
  _require_choice(m, "norm_position", "model", layers.NORM_POSITIONS)
  _require_choice(m, "input_init", "model", cells.base.INPUT_INITS)
  for field in ("hidden_size", "num_layers", "block_size", "unroll"):
    require_positive(m, field, "model")
  if not 0.0 <= m.dropout < 1.0:
    raise ValueError(f"config.model.dropout must be in [0, 1), got {m.dropout}")
  _require_choice(o, "name", "optimizer", OPTIMIZERS)
  require_positive(o, "learning_rate", "optimizer")
  for field in ("weight_decay", "clip_global_norm", "clip_value", "momentum"):
    if o[field] < 0:
      raise ValueError(f"config.optimizer.{field} must be >= 0, got {o[field]}")
  _require_choice(s, "name", "schedule", SCHEDULES)
  if s.name == "step":
    require_positive(s, "decay_every", "schedule")
  if s.plateau_restore_best:
    if s.name != "plateau":
      raise ValueError("config.schedule.plateau_restore_best needs config.schedule.name="
                       f"'plateau', got {s.name!r}")
    if t.select_metric != s.plateau_metric:
      raise ValueError("config.schedule.plateau_restore_best goes back to the best "
                       "checkpoint: config.train.select_metric must equal "
                       f"config.schedule.plateau_metric ({s.plateau_metric!r}), got "
                       f"{t.select_metric!r}")
  if not isinstance(t.eval_batch_stats, bool):
    raise ValueError(f"config.train.eval_batch_stats must be True or False, got "
                     f"{t.eval_batch_stats!r}")
  if isinstance(t.num_epochs, bool) or not isinstance(t.num_epochs, (int, float)) or (
      t.num_epochs < 0):
    raise ValueError(f"config.train.num_epochs must be a number >= 0, got {t.num_epochs!r}")
  for field in (("num_steps",) if not t.num_epochs else ()) + (
      "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "max_nonfinite_in_row"):
    require_positive(t, field, "train")
  if not isinstance(t.precise_bn_batches, int) or t.precise_bn_batches < 0:
    raise ValueError(f"config.train.precise_bn_batches must be an integer >= 0, "
                     f"got {t.precise_bn_batches!r}")
  if t.time_budget_minutes < 0:
    raise ValueError(f"config.train.time_budget_minutes must be >= 0, got {t.time_budget_minutes}")
  split, _, name = str(t.select_metric).partition("/")
  if t.select_metric and not (isinstance(t.select_metric, str) and split and name):
    raise ValueError(f"config.train.select_metric must be \"\" or SPLIT/NAME of an evaluation "
                     f"metric (e.g. \"valid/loss\"), got {t.select_metric!r}")
  _require_choice(t, "select_mode", "train", SELECT_MODES)
  require_positive(config.data, "batch_size", "data")
  _validate_sequence_fields(config.data)


def _validate_sequence_fields(d: ml_collections.ConfigDict) -> None:
  """config.data fields of the arrays and ts data sets."""
  for field in ("path", "train_path", "valid_path", "test_path"):
    if not isinstance(d[field], str):
      raise ValueError(f"config.data.{field} must be a path string, got {d[field]!r}")
  _require_choice(d, "task", "data", sequence_files.TASKS)
  _require_choice(d, "fill_missing", "data", sequence_files.FILL_MISSING)
  if isinstance(d.valid_fraction, bool) or not isinstance(d.valid_fraction, (int, float)) or (
      not 0 <= d.valid_fraction < 1):
    raise ValueError(f"config.data.valid_fraction must be in [0, 1), got {d.valid_fraction!r}")
  if not isinstance(d.standardize, bool):
    raise ValueError(f"config.data.standardize must be True or False, got {d.standardize!r}")
