"""The IndRNN recurrence as associative scans: exact, O(log T) deep.

A step h -> act(a * h + b), with act relu or identity, is the clipped affine
map h -> clip(a * h + b, lo, hi) (relu: lo = 0, hi = the float's maximum), and
two such maps compose into one of the same form:

  clip(a2 * clip(a1 h + b1, lo1, hi1) + b2, lo2, hi2)
      = clip(a2 a1 h + a2 b1 + b2, lo, hi),

with (lo, hi) the image a2 * [lo1, hi1] + b2 (its ends swapped when a2 < 0)
clipped into [lo2, hi2]. So h_t = clip(A_t h0 + B_t, LO_t, HI_t), the
composition of steps 0..t, which `jax.lax.associative_scan` gives for every t
in O(log T) sequential steps. The backward recurrence,
e_t = dh_t + c_{t+1} e_{t+1} with c_t = u * act'(h_t), is affine, so it is a
reversed associative scan of the same kind (without the clip).

Exact up to rounding while the products of u over the sequence stay finite:
|u|^T below the float's maximum (IndRNN's bound MAG^(1/T) keeps it <= MAG).
One scan over all T steps runs about 2 log2(T) levels, each of strided slices,
combines and interleaves over arrays half as long as the level before: O(T)
work, but in many small non-contiguous passes, with each level's arrays kept;
the sequential loop makes one contiguous pass. With `block` = C > 0 the
scan has two levels, the textbook form for a machine with few cores: a loop of
C steps composes each block's maps, all T/C blocks at once; an associative
scan over the T/C block maps gives the state entering each block; a second
loop of C steps runs every block from it. Depth O(C + log(T/C)), two passes
over the inputs. On a CPU this is faster, with C near sqrt(T): on one CPU
device 1.8x one scan at T=784 and 2.2x at T=5000, in 0.8x and 0.4x its memory
(two benchmark runs, docs/performance.md); on an accelerator one scan
(block 0) has the least depth.
"""

import jax
import jax.numpy as jnp

from irnn_jax import parallel, recurrences

Array = jax.Array

# Activations whose step is a clipped affine map: lower and upper clip (None:
# the float's lowest or highest value) and the derivative from the output.
CLIPS = {
    "relu": (0.0, None, lambda h: (h > 0).astype(h.dtype)),
    "identity": (None, None, jnp.ones_like),
}
IMPLS = ("sequential", "parallel", "auto")


def resolve_impl(impl: str, activation: str) -> str:
  """"sequential" or "parallel" for `impl`; "auto" is parallel on an
  accelerator for the activations it covers, the loop on a CPU."""
  if impl not in IMPLS:
    raise ValueError(f"impl {impl!r} not in {IMPLS}")
  if impl == "parallel" and activation not in CLIPS:
    raise ValueError(f"impl 'parallel' covers the activations {tuple(CLIPS)} (a step that "
                     f"is a clipped affine map), not {activation!r}")
  if impl == "auto":
    on_accelerator = jax.default_backend() != "cpu"
    return "parallel" if on_accelerator and activation in CLIPS else "sequential"
  return impl


def _bounds(activation: str, like: Array) -> tuple[Array, Array]:
  """The step's clip (lo, hi), each broadcast to `like`."""
  low, high, _ = CLIPS[activation]
  big = jnp.finfo(like.dtype).max
  low = -big if low is None else low
  high = big if high is None else high
  return (jnp.full(like.shape, low, like.dtype), jnp.full(like.shape, high, like.dtype))


def _compose_clipped(first, second):
  """second after first, each (a, b, lo, hi): h -> clip(a h + b, lo, hi).
  The bounds stay finite (clipped into the finite [lo2, hi2]), so a zero a
  never meets an infinite bound."""
  a1, b1, lo1, hi1 = first
  a2, b2, lo2, hi2 = second
  from_low, from_high = a2 * lo1 + b2, a2 * hi1 + b2
  increasing = a2 >= 0
  low = jnp.where(increasing, from_low, from_high)
  high = jnp.where(increasing, from_high, from_low)
  return a2 * a1, a2 * b1 + b2, jnp.clip(low, lo2, hi2), jnp.clip(high, lo2, hi2)


def _compose_affine(first, second):
  """second after first, each (a, b): x -> a x + b."""
  a1, b1 = first
  a2, b2 = second
  return a2 * a1, a2 * b1 + b2


def _valid_steps(lengths, z):
  """valid[T, B, 1] (None without lengths)."""
  return None if lengths is None else recurrences.step_mask(lengths, z.shape[0])


def _step_maps(b, u, valid, activation):
  """(a, b, lo, hi) of the steps with inputs b[..., B, H]: a = u and the
  activation's clip where `valid` (None: everywhere), the identity elsewhere."""
  a = jnp.broadcast_to(u, b.shape)
  low, high = _bounds(activation, b)
  if valid is not None:
    big = jnp.finfo(b.dtype).max
    a, b = jnp.where(valid, a, 1.0), jnp.where(valid, b, 0.0)
    low, high = jnp.where(valid, low, -big), jnp.where(valid, high, big)
  return a, b, low, high


def _blocks(x, block: int):
  """x[T, ...] as [ceil(T / block), block, ...], zero-padded at the end."""
  count = -(-x.shape[0] // block)
  x = jnp.pad(x, [(0, count * block - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
  return x.reshape(count, block, *x.shape[1:])


def _unblock(x, steps: int):
  return x.reshape(-1, *x.shape[2:])[:steps]


def _blocked_forward(b, u, h0, lengths, activation, block):
  """hs of the clipped affine steps by the two-level scan (module docstring)."""
  steps = b.shape[0]
  blocked = _blocks(b, block)
  count = blocked.shape[0]
  # Steps at or past a row's length are identity maps. The padding needs none:
  # it only reaches outputs past T and the last block's map, which no block uses.
  limit = None if lengths is None else jnp.minimum(lengths, steps)[:, None]

  def step_maps(j):
    valid = None if limit is None else jnp.arange(count)[:, None, None] * block + j < limit
    return _step_maps(blocked[:, j], u, valid, activation)

  big = jnp.finfo(b.dtype).max
  ones = jnp.ones_like(blocked[:, 0])  # From b: per device in a per-device map.
  identity = (ones, jnp.zeros_like(ones), -big * ones, big * ones)
  totals = jax.lax.fori_loop(0, block, lambda j, m: _compose_clipped(m, step_maps(j)), identity)
  scale, shift, low, high = jax.lax.associative_scan(_compose_clipped, totals)
  entering = jnp.concatenate([h0[None], jnp.clip(scale * h0 + shift, low, high)[:-1]])

  def run(j, state):
    h, hs = state
    a, s, lo, hi = step_maps(j)
    h = jnp.clip(a * h + s, lo, hi)
    return h, hs.at[:, j].set(h)

  _, hs = jax.lax.fori_loop(0, block, run, (entering, jnp.zeros_like(blocked)))
  return _unblock(hs, steps)


def _forward(z, u, bias, h0, lengths, activation, block):
  """hs[T, B, H]; a row past its length keeps its last state (identity step)."""
  if block:
    return _blocked_forward(z + bias, u, h0, lengths, activation, block)
  maps = _step_maps(z + bias, u, _valid_steps(lengths, z), activation)
  scale, shift, low, high = jax.lax.associative_scan(_compose_clipped, maps)
  return jnp.clip(scale * h0 + shift, low, high)


def _reverse_affine(coefficient, d, block):
  """e[T, ...] with e_t = d_t + coefficient_t e_{t+1} and e_T = 0, by one
  reversed associative scan (block 0) or the two-level scan."""
  if not block:
    return jax.lax.associative_scan(_compose_affine, (coefficient, d), reverse=True)[1]
  steps = d.shape[0]
  coefficients, ds = _blocks(coefficient, block), _blocks(d, block)  # Padding: e = 0.

  def compose(k, total):  # The steps from the block's end back to step j.
    j = block - 1 - k
    return _compose_affine(total, (coefficients[:, j], ds[:, j]))

  ones = jnp.ones_like(ds[:, 0])
  totals = jax.lax.fori_loop(0, block, compose, (ones, jnp.zeros_like(ones)))
  _, starts = jax.lax.associative_scan(_compose_affine, totals, reverse=True)
  after = jnp.concatenate([starts[1:], jnp.zeros_like(starts[:1])])  # e after each block.

  def run(k, state):
    e, es = state
    j = block - 1 - k
    e = ds[:, j] + coefficients[:, j] * e
    return e, es.at[:, j].set(e)

  _, es = jax.lax.fori_loop(0, block, run, (after, jnp.zeros_like(ds)))
  return _unblock(es, steps)


_recurrence = jax.custom_vjp(_forward, nondiff_argnums=(5, 6))


def _recurrence_fwd(z, u, bias, h0, lengths, activation, block):
  hs = _forward(z, u, bias, h0, lengths, activation, block)
  return hs, (hs, u, h0, lengths)


def _recurrence_bwd(activation, block, residuals, dhs):
  """e_t, the whole gradient reaching h_t, from e_t = dh_t + c_{t+1} e_{t+1}:
  c_t = u * act'(h_t) on a valid step, 1 past the row's length (where
  h_t = h_{t-1}); then dz_t = act'(h_t) e_t on valid steps, du = sum_t dz_t *
  h_{t-1}, dbias = sum_t dz_t, dh0 = c_0 e_0."""
  hs, u, h0, lengths = residuals
  derivative = CLIPS[activation][2](hs)
  valid = _valid_steps(lengths, hs)
  carried = u * derivative if valid is None else jnp.where(valid, u * derivative, 1.0)
  next_carried = jnp.concatenate([carried[1:], jnp.zeros_like(carried[:1])], axis=0)
  e = _reverse_affine(next_carried, dhs, block)
  dz = derivative * e if valid is None else jnp.where(valid, derivative * e, 0.0)
  dh0 = carried[0] * e[0]
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  du, dbias = parallel.sum_over_devices(((dz * h_prev).sum(axis=(0, 1)), dz.sum(axis=(0, 1))))
  return dz, du, dbias, dh0, None


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def indrnn_scan(z: Array, u: Array, bias: Array, h0: Array, activation: str = "relu",
                lengths: Array | None = None, block: int = 0) -> Array:
  """hs[T, B, H] of h_t = act(z_t + bias + u * h_{t-1}) from h0[B, H], by
  associative scans forward and backward; u, bias [H]. With `lengths[B]` a
  row keeps its state after its last step (the caller zeroes those outputs).
  `block` > 0: the two-level scan with blocks of that many steps."""
  if activation not in CLIPS:
    raise ValueError(f"the parallel IndRNN scan covers {tuple(CLIPS)}, not {activation!r}")
  if block < 0:
    raise ValueError(f"block must be >= 0 (0: one scan over all steps), got {block}")
  return _recurrence(z, u, bias, h0, lengths, activation, int(block))


def elementwise_scan(z: Array, u: Array, h0: Array, activation: str = "relu",
                     bias: Array | None = None, moments: bool = False,
                     lengths: Array | None = None, block: int = 0
                     ) -> tuple[Array, Array, tuple]:
  """`recurrences.elementwise_scan` by associative scans: (hs, final h, sums),
  hs zero past each row's length, sums (when `moments`) from hs after the scan."""
  bias = jnp.zeros_like(u) if bias is None else bias
  hs = indrnn_scan(z, u, bias, h0, activation, lengths, block)
  padded = recurrences.zero_padding(hs, lengths)
  valid = _valid_steps(lengths, hs)
  return padded, hs[-1], recurrences.sequence_sums(padded, valid=valid) if moments else ()
