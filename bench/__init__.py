"""Benchmarks of the provider; results in BENCHMARKS.md."""
