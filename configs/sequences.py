"""Your own sequences: a classifier or regressor on a .npz file or UCR/UEA .ts files.

  python -m experiments.make_sequences --out=runs/seqdata
  python -m experiments.main --config=configs/sequences.py --config.data.name=arrays \
      --config.data.path=runs/seqdata/sequences.npz --workdir=runs/seq_npz
  python -m experiments.main --config=configs/sequences.py --config.data.name=ts \
      --config.data.train_path=runs/seqdata/Example_TRAIN.ts \
      --config.data.test_path=runs/seqdata/Example_TEST.ts --workdir=runs/seq_ts

Arguments (key=value, comma-separated, all optional): cell=indrnn|irnn|lstm|gru|rnn,
hidden=128 (units per layer), layers=2, epochs=60, lr (2e-3 for indrnn, else 1e-3); e.g.
configs/sequences.py:cell=lstm,epochs=30. The task (classes or regression
targets), channels and lengths come from the data (irnn_jax/data/sequences.py).

Measured at commit 6c68bf4 on the example set of experiments.make_sequences (600
train, 300 test sequences, 6 classes), 60 epochs = 960 steps, 2-core CPU, float32,
test accuracy, training time (more in docs/results.md):
  cell=indrnn, .npz       98.33%   11.8 s
  cell=indrnn, .ts pair   98.33%   11.7 s
  cell=lstm, .npz         99.33%   36.3 s
  cell=gru / irnn / rnn   99.00% / 99.00% / 98.33%   25.9 / 10.6 / 10.1 s
"""

from irnn_jax import configlib

CELLS = ("indrnn", "irnn", "lstm", "gru", "rnn")
DEFAULTS = {"cell": "indrnn", "hidden": "128", "layers": "2", "epochs": "60", "lr": ""}
LEARNING_RATES = {"indrnn": 2e-3}  # lr="" takes this, else 1e-3 (tuned on the example set).


def parse_args(arg: str) -> dict:
  """"key=value,key=value" -> DEFAULTS updated; unknown keys or cells raise."""
  args = dict(DEFAULTS)
  for item in filter(None, (part.strip() for part in arg.split(","))):
    key, sep, value = item.partition("=")
    if not sep or key not in DEFAULTS:
      raise ValueError(f"configs/sequences.py: bad argument {item!r}; give key=value with "
                       f"key in {tuple(DEFAULTS)}")
    args[key] = value
  if args["cell"] not in CELLS:
    raise ValueError(f"configs/sequences.py: unknown cell={args['cell']!r}; choose from {CELLS}")
  return args


def get_config(arg: str = ""):
  args = parse_args(arg)
  c = configlib.base_config()
  d = c.data
  d.name = "arrays"  # Or "ts" with train_path (and test_path, valid_path).
  d.seq_len = 0  # The data's own: its longest sequence.
  d.batch_size = 32
  d.eval_batch_size = 256
  d.eval_examples = 0  # Whole splits.

  m = c.model
  m.cell = args["cell"]
  m.hidden_size = int(args["hidden"])
  m.num_layers = int(args["layers"])
  m.input_init = "glorot"  # Standardised inputs: no need for the tiny N(0, 0.001).
  if m.cell == "indrnn":  # As in the IndRNN paper: batch norm after each layer, bounded u.
    m.norm = "sequence"  # Statistics over the valid steps only.
    m.cells.indrnn.max_magnitude = 2.0  # |u| <= 2^(1/T), T the data's longest sequence.

  o = c.optimizer
  o.learning_rate = float(args["lr"]) if args["lr"] else LEARNING_RATES.get(m.cell, 1e-3)
  o.clip_global_norm = 5.0

  t = c.train
  t.num_epochs = float(args["epochs"])
  t.log_every = 50
  t.eval_every = 200
  t.checkpoint_every = 200
  return c
