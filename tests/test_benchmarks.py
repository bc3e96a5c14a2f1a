"""The benchmark tools: timing and ratios with fake timers, the bare products and the
step breakdown's pieces at tiny shapes."""

import argparse
import statistics

import numpy as np
import pytest

from benchmarks import throughput


class FakeTimer:
  """A timer whose n-step runs take `seconds[k]` per step on its k-th call
  (the last one repeated); every call is logged as (name, steps). With
  `fail_at`, its call number `fail_at` (or its close, "close") fails as a
  PyTorch child does."""

  def __init__(self, name, seconds, log, fail_at=None):
    self.name, self.seconds, self.log, self.calls, self.fail_at = name, seconds, log, 0, fail_at

  def run(self, steps):
    self.log.append((self.name, steps))
    if self.calls == self.fail_at:
      raise throughput.TorchFailed("child died", self)
    per_step = self.seconds[min(self.calls, len(self.seconds) - 1)]
    self.calls += 1
    return per_step * steps

  def close(self):
    if self.fail_at == "close":
      raise throughput.TorchFailed("no answer", self)
    return {"closed": self.name}


def _args(**overrides):
  values = dict(repeats=3, min_seconds=3.0, max_steps=50, slow_seconds=4.0)
  return argparse.Namespace(**{**values, **overrides})


def test_implementations_are_timed_in_turn_with_a_warm_up_step_each_round():
  log = []
  timers = {"a": FakeTimer("a", [2.0, 0.25], log), "b": FakeTimer("b", [1.0, 0.5], log)}
  results = throughput.time_interleaved(timers, _args())
  # First steps, second steps (which size the runs: 3 s over 3 rounds), then
  # each round: a's warm-up step and run, b's.
  steps_a, steps_b = 4, 2  # ceil(1 / 0.25), ceil(1 / 0.5).
  rounds = [("a", 1), ("a", steps_a), ("b", 1), ("b", steps_b)] * 3
  assert log == [("a", 1), ("b", 1), ("a", 1), ("b", 1)] + rounds
  assert results["a"]["seconds_per_step"] == 0.25 and results["a"]["steps"] == steps_a
  assert results["b"]["timings"] == [0.5, 0.5, 0.5] and results["b"]["warm"]


def test_a_slow_first_step_is_the_measurement_and_the_median_is_taken():
  log = []
  per_step = [0.1, 0.1, 0.1, 0.3, 0.1, 0.2, 0.1, 0.5]  # Warm-ups at 0.1.
  timers = {"slow": FakeTimer("slow", [5.0], log), "fast": FakeTimer("fast", per_step, log)}
  results = throughput.time_interleaved(timers, _args())
  assert results["slow"] == {"seconds_per_step": 5.0, "steps": 1, "warm": False}
  assert [name for name, _ in log].count("slow") == 1
  assert results["fast"]["timings"] == [0.3, 0.2, 0.5]
  assert results["fast"]["seconds_per_step"] == statistics.median([0.3, 0.2, 0.5])
  assert results["fast"]["spread"] == (0.2, 0.5)


@pytest.mark.parametrize("fail_at", [3, "close"])
def test_a_failing_child_is_skipped_and_the_others_are_timed_without_it(fail_at):
  log = []
  timers = {"jax": FakeTimer("jax", [0.5], log),
            "torch": FakeTimer("torch", [0.5], log, fail_at=fail_at)}
  results = throughput.time_and_close(timers, _args())
  assert results["torch"]["skipped"] in ("child died", "no answer")
  assert results["jax"]["closed"] == "jax" and results["jax"]["warm"]
  assert len(results["jax"]["timings"]) == 3
  if fail_at == 3:  # It failed in the first round: the second try times jax alone.
    assert log[-6:] == [("jax", 1), ("jax", 2)] * 3


def _row(impl, own, timings, model="lstm", devices=1, case="c"):
  seconds = statistics.median(timings)
  return {"model": model, "shape": "s", "devices": devices, "impl": impl, "own": own, "case": case,
          "batch": 32, "seq_per_s": 32 / seconds, "result": {"timings": timings}}


def test_peer_ratios_come_from_the_fastest_peer_of_the_same_case_and_rounds():
  rows = [_row("irnn_jax", True, [1.0, 2.0, 1.0]),
          _row("torch", False, [2.0, 2.0, 4.0]),  # Median 2: the fastest peer.
          _row("flax", False, [3.0, 3.0, 3.0]),
          _row("torch", False, [0.1, 0.1, 0.1], devices=2)]  # Another device count.
  throughput.add_peer_ratios(rows)
  mine = rows[0]
  assert mine["best_peer"] == "torch" and mine["ratio_vs_best_peer"] == pytest.approx(2.0)
  assert mine["ratio_range"] == (1.0, 4.0)  # 2/1, 2/2, 4/1 round by round.
  assert "ratio_vs_best_peer" not in rows[1]


def test_a_peer_timed_in_another_case_gives_a_ratio_but_no_range():
  rows = [_row("irnn_jax parallel", True, [1.0, 1.0], case="parallel"),
          _row("torch", False, [2.0, 2.0], case="sequential")]
  throughput.add_peer_ratios(rows)
  assert rows[0]["ratio_vs_best_peer"] == pytest.approx(2.0)
  assert rows[0]["ratio_range"] is None


def test_rounds_of_different_lengths_give_no_ratio_range():
  row, peer = _row("irnn_jax", True, [1.0, 1.0]), _row("torch", False, [2.0])
  assert throughput.round_ratios(row, peer) == []


@pytest.mark.slow
def test_the_pytorch_child_answers_step_counts_and_reports_memory():
  pytest.importorskip("torch")
  spec = {"cell": "rnn", "task": "classification", "seq_len": 5, "batch": 2, "layers": 1,
          "hidden": 3, "input_dim": 1, "num_outputs": 4, "norm": False, "u_max": float("inf"),
          "learning_rate": 1e-3, "clip_global_norm": 1.0, "device": "cpu", "threads": 1}
  timer = throughput.TorchTimer(spec, None, timeout=120)
  assert timer.run(1) > 0  # The step the child trained while starting.
  assert timer.run(1) > 0 and timer.run(3) > 0
  info = timer.close()
  assert info["threads"] == 1 and info["peak_mb"] >= 0
  assert timer.process.returncode == 0


def test_the_product_chain_is_the_loop_it_times():
  from benchmarks import product_bound
  rng = np.random.default_rng(0)
  h, w = rng.normal(size=(4, 6)), 0.3 * rng.normal(size=(6, 24))
  pairs, kernel_grad = product_bound.products(steps=3)
  expected = h
  for _ in range(3):
    expected = (expected @ w) @ w.T
  np.testing.assert_allclose(pairs(h, w, w.T), expected, rtol=1e-4)
  rows, das = rng.normal(size=(10, 6)), rng.normal(size=(10, 24))
  outer_sum = sum(np.outer(rows[i], das[i]) for i in range(10))
  np.testing.assert_allclose(kernel_grad(rows, das), outer_sum, rtol=1e-4, atol=1e-5)


def test_the_product_bound_is_the_batch_over_the_summed_times():
  from benchmarks import product_bound
  assert product_bound.table_row("lstm", 32, 128, 60.0, 20.0) == (
      "| lstm | 32 | 128 | 60.0 | 20.0 | 80.0 | 400 |")  # 32 sequences in 80 ms.


def test_the_loop_free_stand_in_returns_what_the_recurrence_returns():
  import jax
  from benchmarks import step_breakdown
  from irnn_jax import recurrences
  rng = np.random.default_rng(1)
  z, u, bias = rng.normal(size=(9, 4, 6)), rng.uniform(size=6), rng.normal(size=6)
  h0 = np.zeros((4, 6))
  for moments in (False, True):
    stand_in = step_breakdown.loop_free_scan(z, u, h0, "relu", 1, bias=bias, moments=moments)
    real = recurrences.elementwise_scan(z, u, h0, "relu", 1, bias=bias, moments=moments)
    shapes = lambda tree: jax.tree.map(lambda a: np.shape(a), tree)
    assert shapes(stand_in) == shapes(real)


def test_best_ms_is_the_best_mean_over_repeats(monkeypatch):
  from benchmarks import step_breakdown
  clock, durations = [0.0], iter([9.0] + [0.004] * 4 + [0.002] * 4 + [0.003] * 4)

  def run():  # Each call advances the clock by its duration (the first: the warm-up).
    clock[0] += next(durations)
    return np.zeros(1)

  monkeypatch.setattr(step_breakdown.time, "perf_counter", lambda: clock[0])
  assert step_breakdown.best_ms(run, repeats=3, calls=4) == pytest.approx(2.0)


@pytest.mark.slow
def test_step_breakdown_times_a_small_indrnn_training_step():
  from benchmarks import step_breakdown
  case = throughput.Case("indrnn", "adding", 9, 4, 2, hidden=6, norm=True)
  for fold_norm in (True, False):
    ms = step_breakdown.step_ms(throughput.case_config(case), fold_norm=fold_norm, case=case)
    assert 0 < ms < 60_000
