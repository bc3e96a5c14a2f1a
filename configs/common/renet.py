"""What the ReNet experiment files share (configs/renet_*.py).

`model_config(c, cell, paper)` sets config.model for a ReNet classifier
(model.arch = "renet", see spatial.py) with `cell` cells in its spatial
blocks. Sizes:
  CPU (default): convs 3x3 of 32 and 64, each with a 2x2 pool (28 -> 7),
      two blocks of 1x1 patches, 64 units per direction;
  paper ("_paper"): the same with convs of 64 and 128 and 128 units.
Patches larger than 1x1 need a map that they divide, e.g. data.pad_to=32 and
patch_sizes=(2, 1): 32 -> 8 -> 4 -> 4.
Every cell kind trains with Adam and glorot input weights; IndRNN keeps
|u| <= 2^(1/T), T the image height (the image height: longer than any sweep).
"""

import ml_collections

CELLS = ("indrnn", "irnn", "lstm", "gru")


def model_config(c: ml_collections.ConfigDict, cell: str,
                 paper: bool) -> ml_collections.ConfigDict:
  """Set c.model (and the optimizer) for a ReNet with `cell` cells."""
  if cell not in CELLS:
    raise ValueError(f"unknown ReNet cell {cell!r}; choose from {CELLS}")
  m = c.model
  m.arch = "renet"
  m.cell = cell
  m.conv_channels = (64, 128) if paper else (32, 64)  # Stem: conv, BN, relu, pool each.
  m.conv_kernel = 3
  m.pool = 2  # Max-pool window and stride after each stem conv; 1 = none.
  m.patch_sizes = (1, 1)  # One spatial block each: int or [ph, pw].
  m.num_layers = 2  # Must equal len(patch_sizes).
  m.hidden_size = 128 if paper else 64  # Per direction: blocks output 2 * hidden_size.
  m.norm = "none"  # Inside the sweeps; batch norm always follows every block.
  m.dropout = 0.0  # After every spatial block.
  m.input_init = "glorot"
  m.unroll = 8  # Sweeps are short: unrolled they run faster on CPU.
  m.cells.indrnn.max_magnitude = 2.0
  o = c.optimizer
  o.name, o.learning_rate, o.clip_global_norm = "adam", 1e-3, 10.0
  return c
