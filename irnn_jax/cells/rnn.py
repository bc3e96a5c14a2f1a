"""Full-matrix ReLU or tanh RNNs: the tanh RNN baseline and IRNN's base."""

from irnn_jax import recurrences
from irnn_jax.cells.base import RECURRENT_INITS, RecurrentCellBase, recurrent_blocks_init, register


class DenseRecurrentCell(RecurrentCellBase):
  """h_t = act(W x_t + b + h_{t-1} W_h), W_h [H, H]; not registered itself.

  Parameters: input_projection (kernel [D, H], bias [H]) and recurrent_kernel
  [H, H]. A subclass gives `recurrent_kernel_init`."""
  activation: str = "tanh"

  def recurrent_kernel_init(self):
    raise NotImplementedError

  def setup(self):
    super().setup()
    self.recurrent_kernel = self.param("recurrent_kernel", self.recurrent_kernel_init(),
                                       (self.features, self.features))

  def recur(self, z, state=None, bias=None, moments: bool = False, lengths=None):
    state = self.initial_state(z) if state is None else state
    return recurrences.dense_scan(z, self.recurrent_kernel, state, self.activation,
                                  self.unroll, bias, moments, lengths)

  def __call__(self, carry, x):
    z, bias = self.project(x)
    act = recurrences.ACTIVATIONS[self.activation][0]
    h = act(z + bias + carry @ self.recurrent_kernel)
    return h, h


@register("rnn")
class TanhRNNCell(DenseRecurrentCell):
  """h_t = tanh(W x_t + b + h_{t-1} W_h), W_h orthogonal, N(0, recurrent_std), I or Glorot."""
  recurrent_init: str = "orthogonal"  # orthogonal | normal | identity | glorot
  recurrent_std: float = 0.01  # recurrent_init="normal".

  choices = {"activation": tuple(recurrences.ACTIVATIONS), "recurrent_init": RECURRENT_INITS}

  def recurrent_kernel_init(self):
    return recurrent_blocks_init(self.recurrent_init, self.recurrent_std, 1)
