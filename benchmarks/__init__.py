"""Benchmark scripts (run as `python benchmarks/NAME.py`); the statistical tests reuse their baselines."""
