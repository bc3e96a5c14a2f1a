"""LSTM baseline."""

import flax.linen as nn

from irnn_jax import initializers as inits
from irnn_jax import recurrences
from irnn_jax.cells.base import RECURRENT_INITS, RecurrentCellBase, recurrent_blocks_init, register


@register("lstm")
class LSTMCell(RecurrentCellBase):
  """LSTM with gate blocks (input, forget, cell, output): kernels [D, 4H] and
  recurrent_kernel [H, 4H], bias [4H] with the forget block at forget_bias.
  The state is (h, c)."""
  forget_bias: float = 1.0
  recurrent_init: str = "orthogonal"  # orthogonal | normal | identity | glorot, per gate block.
  recurrent_std: float = 0.01  # recurrent_init="normal".

  gates = 4
  choices = {"recurrent_init": RECURRENT_INITS}

  def bias_init(self):
    return inits.gated_bias(self.features, 4, {1: self.forget_bias})

  def setup(self):
    super().setup()
    self.recurrent_kernel = self.param(
        "recurrent_kernel", recurrent_blocks_init(self.recurrent_init, self.recurrent_std, 4),
        (self.features, 4 * self.features))

  def initial_state(self, z):
    zeros = super().initial_state(z)
    return zeros, zeros

  def recur(self, z, state=None, bias=None, moments: bool = False, lengths=None):
    del moments  # The loop takes no batch-norm sums.
    state = self.initial_state(z) if state is None else state
    hs, final = recurrences.lstm_scan(z, self.recurrent_kernel, state, self.unroll,
                                      self.remat, bias, lengths)
    return hs, final, ()

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    zeros = super().initialize_carry(rng, input_shape)
    return zeros, zeros

  def __call__(self, carry, x):
    z, bias = self.project(x)
    h, c = recurrences.lstm_step(z + bias, self.recurrent_kernel, carry)
    return (h, c), h
