"""Benchmarks: `python -m benchmarks.throughput [--quick]`."""
