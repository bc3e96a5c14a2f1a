"""IRNN (Le, Jaitly & Hinton 2015): a ReLU RNN whose recurrent matrix starts as the identity."""

from irnn_jax import initializers as inits
from irnn_jax import recurrences
from irnn_jax.cells.base import register
from irnn_jax.cells.rnn import DenseRecurrentCell


@register("irnn")
class IRNNCell(DenseRecurrentCell):
  """h_t = relu(W x_t + b + h_{t-1} W_h), W_h = identity_scale * I at init.

  The paper's input weights are N(0, 0.001), the base class's default."""
  activation: str = "relu"
  identity_scale: float = 1.0  # W_h = identity_scale * I.

  choices = {"activation": tuple(recurrences.ACTIVATIONS)}

  def recurrent_kernel_init(self):
    return inits.scaled_identity(self.identity_scale)
