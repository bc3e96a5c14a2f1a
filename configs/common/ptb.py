"""What the two Penn Treebank experiment files share (configs/ptb_*.py).

`ptb_config(level, variant)` is a whole experiment at level "char" or "word".
Variants (IndRNN paper 4.4 and the authors' PTB code):
  indrnn:       stacked IndRNN, batch norm per time step before the activation
                (model.norm="per_step", norm_position="pre"; the CPU-sized char
                configs normalise over all steps instead), dropout with one
                mask per sequence, Adam, weight decay 1e-4 on the weight
                matrices only (never on u), elementwise gradient clip 10;
  res_indrnn:   the same with residual blocks of 2 layers;
  dense_indrnn: the same with dense blocks (hidden_size is the growth rate);
  lstm:         an LSTM baseline, no batch norm, global-norm clip 1.
A "_paper" suffix gives the paper's sizes; without it the run is sized for
about an hour on a 2-core CPU (smaller model, larger learning rate, IndRNN u
initialised in U(0, 0.9) rather than U(0, 1): a few units with u near 1 make
the first hundreds of steps unstable, and an hour has no time to spare).

|u| <= 1 (model.cells.indrnn.max_magnitude = 1, so MAG^(1/T) = 1 for every T): the state
runs on from batch to batch over the whole training stream (truncated BPTT,
data/ptb.py), so T is not the length the state must stay bounded over; the
authors' char code clamps u to [-1, 1] too (their word code to 0.99).
"""

import ml_collections

from irnn_jax import configlib

VARIANTS = ("indrnn", "res_indrnn", "dense_indrnn", "lstm")
# Both levels: the char level reads ptb.char.*.txt there, or spells out the
# word files.
DATA_DIR = "../shared/data/ptb"

# Paper size: (num_layers, hidden_size, dropout, seq_len, batch_size).
# IndRNN paper: 6 x 2000 (T = 50 or 150), residual 11 x 2000 (T = 150);
# dense: growth 256, 3 blocks (the authors' (8, 6, 4) made uniform: 6, 6, 6);
# word res-IndRNN as the authors' run_res.sh (5 blocks, dropout 0.45, embedding
# 600; their weight tying and embedding dropouts are not modelled here);
# LSTM baselines: 1 x 1000 (Cooijmans et al. 2017), 2 x 1500 (Zaremba et al.).
_PAPER = {
    "char": {"indrnn": (6, 2000, 0.25, 50, 128),
             "res_indrnn": (11, 2000, 0.3, 150, 128),
             "dense_indrnn": (19, 256, 0.3, 50, 128),
             "lstm": (1, 1000, 0.0, 100, 64)},
    "word": {"indrnn": (6, 2000, 0.45, 50, 128),
             "res_indrnn": (11, 2000, 0.45, 50, 128),
             "dense_indrnn": (19, 256, 0.45, 50, 128),
             "lstm": (2, 1500, 0.65, 35, 20)},
}
# CPU size: (num_layers, hidden_size, dropout, learning rate, num_steps);
# num_steps fills 45-50 minutes of training at the speed measured on 2 cores
# shared with other runs (steps/s: char 3.1, 2.9, 5.1, 1.5; word 2.1, 2.1,
# 1.9, 1.9), leaving time for the evaluations of whole splits; char indrnn
# fills an hour alone (see _CPU_STEP_DECAY).
_CPU = {
    "char": {"indrnn": (3, 512, 0.1, 2e-3, 34000),
             "res_indrnn": (5, 384, 0.1, 2e-3, 8000),
             "dense_indrnn": (5, 192, 0.1, 2e-3, 14000),
             "lstm": (1, 512, 0.0, 2e-3, 4000)},
    "word": {"indrnn": (3, 256, 0.3, 2e-3, 6000),
             "res_indrnn": (5, 256, 0.3, 2e-3, 6000),
             "dense_indrnn": (5, 128, 0.3, 2e-3, 5500),
             "lstm": (2, 256, 0.3, 2e-3, 5500)},
}
_CPU_DATA = {"char": (100, 32), "word": (35, 32)}  # (seq_len, batch_size)
# CPU runs measured alone for an hour: the learning rate x0.2 every N steps
# instead of on a plateau. Char IndRNN: 34,000 steps at ~10.7 steps/s in
# 55.6 min, valid BPC 1.75 flat by step 14,000, 1.63 after the first drop,
# 1.562 at the end (README).
_CPU_STEP_DECAY = {("char", "indrnn"): 14000}


def data_config(c: ml_collections.ConfigDict, level: str) -> ml_collections.ConfigDict:
  """Set c.data for Penn Treebank at `level` (char | word)."""
  d = c.data
  d.name = "ptb"
  d.level = level
  d.dir = DATA_DIR  # From the repository root.
  d.seq_len, d.batch_size = _CPU_DATA[level]  # T per window; parallel streams.
  d.eval_batch_size = 64  # Parallel streams in evaluation.
  return c


def ptb_config(level: str, variant: str) -> ml_collections.ConfigDict:
  arch, paper = configlib.split_variant(variant, VARIANTS, f"PTB {level}")
  c = data_config(configlib.base_config(), level)
  m, o, s, t = c.model, c.optimizer, c.schedule, c.train
  if paper:
    m.num_layers, m.hidden_size, m.dropout, c.data.seq_len, c.data.batch_size = (
        _PAPER[level][arch])
    o.learning_rate = 2e-4
    t.num_steps = 300_000
    t.log_every, t.eval_every, t.checkpoint_every = 100, 2000, 2000
    s.plateau_patience = 5
  else:
    m.num_layers, m.hidden_size, m.dropout, o.learning_rate, t.num_steps = (
        _CPU[level][arch])
    t.log_every, t.eval_every, t.checkpoint_every = 50, 1000, 1000
    s.plateau_patience = 2
  m.embed_size = 600 if paper and level == "word" and arch != "lstm" else 0
  o.name = "adam"
  s.name = "plateau"  # The rate / 10 when valid/loss stops improving.
  s.plateau_metric = "valid/loss"
  s.plateau_factor = 0.1
  if not paper and (level, arch) in _CPU_STEP_DECAY:
    s.name, s.decay_every, s.decay_factor = "step", _CPU_STEP_DECAY[level, arch], 0.2
    t.eval_every = 2000
  m.input_init = "glorot"
  if arch == "lstm":
    m.cell = "lstm"
    o.clip_global_norm = 1.0
    return c
  m.cell = "indrnn"
  m.connection = {"indrnn": "plain", "res_indrnn": "residual",
                  "dense_indrnn": "dense"}[arch]
  m.block_size = 6 if arch == "dense_indrnn" and paper else 2
  m.norm, m.norm_position = "per_step", "pre"
  if not paper and level == "char":
    # Per-step statistics of 32 sequences are noisy: in 150 s runs side by
    # side, batch norm over all steps and sequences ("sequence") reached a
    # training loss of 1.70 nats at step 400 against 1.78 for "per_step".
    m.norm = "sequence"
  m.cells.indrnn.max_magnitude = 1.0  # |u| <= 1; see the module docstring.
  m.cells.indrnn.u_high = None if paper else 0.9  # None: min(1, MAG^(1/T)) = 1.
  o.clip_value = 10.0
  o.weight_decay = 1e-4  # Kernels and the embedding; never u, biases, norms.
  return c
