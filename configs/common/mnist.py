"""What the four MNIST experiment files share (configs/*mnist*.py).

`data_config(c, view)` sets the config.data fields MNIST needs;
`mnist_config(view, variant)` is a whole experiment. Variants:
  irnn:       1 x 100 IRNN, SGD, global-norm clip 1, batch 16 (Le et al. 2015);
              learning rate 1e-6 with _paper (1,000,000 steps),
              1e-3 at CPU size (with clip 1 no parameter moves more than the
              learning rate per step, so 1e-6 learns nothing in an hour);
  indrnn:     6 x 128 IndRNN, batch norm over the sequence after each layer,
              Adam 2e-4, batch 32, |u| <= 2^(1/T) (Li et al. 2018);
  res_indrnn: the same with residual blocks of 2 layers;
  lstm, rnn:  1 x 128 baselines (rnn: tanh), Adam 2e-4, batch 32.
A "_paper" suffix trains for a paper-sized budget and evaluates whole splits;
without it the run is CPU-sized (fewer steps, the first 2000 examples of
each evaluation split).
"""

import ml_collections

from irnn_jax import configlib

VARIANTS = ("irnn", "indrnn", "res_indrnn", "lstm", "rnn")


def data_config(c: ml_collections.ConfigDict, view: str) -> ml_collections.ConfigDict:
  """Set c.data for MNIST read under `view` (pixels | permuted | patches | rows | image)."""
  d = c.data
  d.name = "mnist"
  d.dir = "../shared/data/mnist"  # The four IDX files, from the repository root.
  d.view = view
  d.seq_len = 0  # The view's own: 784, 784 / patch_size or 28.
  d.batch_size = 32
  d.eval_examples = 0  # Whole splits.
  return c


def mnist_config(view: str, variant: str) -> ml_collections.ConfigDict:
  cell, paper = configlib.split_variant(variant, VARIANTS, "MNIST")
  c = data_config(configlib.base_config(), view)
  m, o = c.model, c.optimizer
  c.schedule.plateau_metric = "valid/loss"  # Never select on the test set.
  if cell == "irnn":
    c.data.batch_size = 16
    m.cell, m.num_layers, m.hidden_size = "irnn", 1, 100
    m.cells.irnn.identity_scale = 1.0
    m.input_std = 0.001
    o.name, o.learning_rate, o.clip_global_norm = "sgd", 1e-6 if paper else 1e-3, 1.0
  elif cell in ("indrnn", "res_indrnn"):
    m.cell, m.num_layers, m.hidden_size = "indrnn", 6, 128
    m.connection = "residual" if cell == "res_indrnn" else "plain"
    m.norm, m.norm_position = "sequence", "post"
    m.cells.indrnn.max_magnitude = 2.0  # |u| <= 2^(1/T), T the view's steps.
    m.cells.indrnn.last_layer_u = "same"
    o.name, o.learning_rate, o.clip_global_norm = "adam", 2e-4, 10.0
    # Over 784 ReLU steps the running BN averages lag the parameters far enough
    # to wreck evaluation (87.8% with batch statistics vs 47% measured).
    c.train.precise_bn_batches = 20
  else:
    m.cell, m.num_layers, m.hidden_size = cell, 1, 128
    m.input_init = "glorot"
    o.name, o.learning_rate, o.clip_global_norm = "adam", 2e-4, 10.0

  t = c.train
  if paper:
    t.num_steps = 1_000_000 if cell == "irnn" else 200_000
    t.log_every, t.eval_every, t.checkpoint_every = 100, 5000, 5000
    c.data.eval_examples = 0
  else:
    t.num_steps = 1000
    t.log_every, t.eval_every, t.checkpoint_every = 25, 250, 250
    c.data.eval_examples = 2000
  return c
