"""Reproducible benchmarks; results go to docs/BENCHMARKS.md."""
