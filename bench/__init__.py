"""Reproducible benchmarks of knm; see bench/README.md."""
