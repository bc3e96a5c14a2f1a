"""IndRNN (Li et al. 2018): one recurrent weight per unit."""

import flax.linen as nn
import jax.numpy as jnp

from irnn_jax import associative
from irnn_jax import initializers as inits
from irnn_jax import recurrences
from irnn_jax.cells.base import RecurrentCellBase, register

U_INITS = ("uniform", "constant")
LAST_LAYER_U = ("same", "near_one", "one", "mag_range")


@register("indrnn")
class IndRNNCell(RecurrentCellBase):
  """h_t = act(W x_t + b + u * h_{t-1}), u[H] one weight per unit.

  Parameters: input_projection (kernel [D, H], bias [H]) and u [H]. After every
  optimizer update `constrain` puts |u| in [min_magnitude, MAG^(1/T)] with
  MAG = max_magnitude and T = seq_len, keeping the sign.
  """
  activation: str = "relu"
  u_init: str = "uniform"  # uniform U(u_low, u_high) | constant u_value
  u_low: float = 0.0
  u_high: float | None = None  # None: min(1, MAG^(1/T)).
  u_value: float = 1.0
  max_magnitude: float = 0.0  # MAG: |u| <= MAG^(1/T) after every update; 0 = off.
  min_magnitude: float = 0.0  # |u| >= this after every update; 0 = off.
  # Last layer's u: same | near_one (U(1-eps, 1+eps)) | one | mag_range (U(MAG^(-1/T), MAG^(1/T)))
  last_layer_u: str = "same"
  last_layer_u_eps: float | None = None  # near_one's eps; None: 1 - 2^(-1/T).
  # near_one, mag_range: after every update the last layer's |u| stays at or
  # above the low end of its initial range, so u^T cannot fall below it.
  last_layer_u_floor: bool = False
  # The time loop: sequential (fused loop) | parallel (associative scans, O(log T)
  # deep with parallel_block 0; relu and identity) | auto (parallel on an
  # accelerator, else sequential)
  impl: str = "sequential"
  # impl parallel: steps C per block of a two-level scan (a loop inside the
  # blocks, an associative scan across them, depth O(C + log(T/C)); about 2x
  # faster than one scan on a CPU with C near sqrt(T)); 0 = one associative
  # scan over all steps (the least depth, for accelerators)
  parallel_block: int = 0

  choices = {"activation": tuple(recurrences.ACTIVATIONS), "u_init": U_INITS,
             "last_layer_u": LAST_LAYER_U, "impl": associative.IMPLS}

  @classmethod
  def check_options(cls, options, where):
    super().check_options(options, where)
    for key in ("max_magnitude", "min_magnitude", "parallel_block"):
      if options[key] < 0:
        raise ValueError(f"{where}.{key} must be >= 0, got {options[key]}")
    if options["impl"] == "parallel" and options["activation"] not in associative.CLIPS:
      raise ValueError(f"{where}.impl: 'parallel' covers the activations "
                       f"{tuple(associative.CLIPS)}, not {options['activation']!r}")

  @property
  def u_bound(self) -> float:
    """Upper bound on |u|: MAG^(1/T), or infinity when no MAG is set."""
    if self.max_magnitude <= 0:
      return float("inf")
    if self.seq_len <= 0:
      raise ValueError("IndRNNCell.max_magnitude needs seq_len, the T of MAG^(1/T)")
    return float(self.max_magnitude) ** (1.0 / self.seq_len)

  @property
  def u_range(self) -> tuple[float, float]:
    """(low, high) of the uniform u init; high None resolves to min(1, MAG^(1/T))."""
    high = self.u_high if self.u_high is not None else min(self.u_bound, 1.0)
    return self.u_low, high

  def setup(self):
    super().setup()
    if self.u_init == "uniform":
      init = inits.uniform_range(*self.u_range)
    elif self.u_init == "constant":
      init = inits.constant(self.u_value)
    else:
      raise ValueError(f"unknown u_init {self.u_init!r}; choose from {U_INITS}")
    self.u = self.param("u", init, (self.features,))

  def recur(self, z, state=None, bias=None, moments: bool = False, lengths=None):
    state = self.initial_state(z) if state is None else state
    if associative.resolve_impl(self.impl, self.activation) == "parallel":
      return associative.elementwise_scan(z, self.u, state, self.activation, bias, moments,
                                          lengths, self.parallel_block)
    return recurrences.elementwise_scan(z, self.u, state, self.activation, self.unroll,
                                        bias, moments, lengths)

  def __call__(self, carry, x):
    z, bias = self.project(x)
    h = recurrences.ACTIVATIONS[self.activation][0](z + bias + self.u * carry)
    return h, h

  @nn.nowrap
  def for_layer(self, index: int, num_layers: int) -> "IndRNNCell":
    """The last layer follows `last_layer_u`; `near_one` keeps u^T >= 1/2 by
    default, so that the last layer remembers the whole sequence; `mag_range`
    is the IndRNN authors' U(MAG^(-1/T), MAG^(1/T))."""
    if index != num_layers - 1 or self.last_layer_u == "same":
      return self
    bound = self.u_bound
    last = self._last_layer_cell(bound)
    if self.last_layer_u_floor and self.last_layer_u in ("near_one", "mag_range"):
      last = last.clone(min_magnitude=max(self.min_magnitude, last.u_low))
    return last

  @nn.nowrap
  def _last_layer_cell(self, bound: float) -> "IndRNNCell":
    if self.last_layer_u == "near_one":
      eps = self.last_layer_u_eps
      if eps is None:
        if self.seq_len <= 0:
          raise ValueError("IndRNNCell.last_layer_u='near_one' needs seq_len (the T of "
                           "its default eps) or last_layer_u_eps")
        eps = 1.0 - 0.5 ** (1.0 / self.seq_len)
      return self.clone(u_init="uniform", u_low=1.0 - eps, u_high=min(1.0 + eps, bound))
    if self.last_layer_u == "one":
      return self.clone(u_init="constant", u_value=min(1.0, bound))
    if self.last_layer_u == "mag_range":
      if self.max_magnitude <= 0:
        raise ValueError("IndRNNCell.last_layer_u='mag_range' draws u from "
                         "U(MAG^(-1/T), MAG^(1/T)): it needs max_magnitude > 0")
      return self.clone(u_init="uniform", u_low=1.0 / bound, u_high=bound)
    raise ValueError(f"IndRNNCell.last_layer_u: unknown value {self.last_layer_u!r}; "
                     f"choose from {LAST_LAYER_U}")

  @nn.nowrap
  def constrain(self, params: dict) -> dict:
    low, high = self.min_magnitude, self.u_bound
    if low <= 0 and high == float("inf"):
      return params
    u = params["u"]
    magnitude = jnp.clip(jnp.abs(u), low, high)
    return {**params, "u": jnp.where(u < 0, -magnitude, magnitude)}
