"""GRU baseline."""

import jax

from irnn_jax import recurrences
from irnn_jax.cells.base import RECURRENT_INITS, RecurrentCellBase, recurrent_blocks_init, register


@register("gru")
class GRUCell(RecurrentCellBase):
  """GRU with gate blocks (reset, update, new): kernels [D, 3H] and
  recurrent_kernel [H, 3H], bias [3H], and recurrent_bias_n [H] inside the
  reset gate: n = tanh(z_n + r * (h W_hn + b_hn))."""
  recurrent_init: str = "orthogonal"  # orthogonal | normal | identity | glorot, per gate block.
  recurrent_std: float = 0.01  # recurrent_init="normal".

  gates = 3
  choices = {"recurrent_init": RECURRENT_INITS}

  def setup(self):
    super().setup()
    self.recurrent_kernel = self.param(
        "recurrent_kernel", recurrent_blocks_init(self.recurrent_init, self.recurrent_std, 3),
        (self.features, 3 * self.features))
    self.recurrent_bias_n = self.param("recurrent_bias_n", jax.nn.initializers.zeros,
                                       (self.features,))

  def recur(self, z, state=None, bias=None, moments: bool = False, lengths=None):
    del moments  # The loop takes no batch-norm sums.
    state = self.initial_state(z) if state is None else state
    hs, final = recurrences.gru_scan(z, self.recurrent_kernel, self.recurrent_bias_n, state,
                                     self.unroll, self.remat, bias, lengths)
    return hs, final, ()

  def __call__(self, carry, x):
    z, bias = self.project(x)
    h = recurrences.gru_step(z + bias, self.recurrent_kernel, self.recurrent_bias_n, carry)
    return h, h
