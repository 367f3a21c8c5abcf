"""Benchmarks behind `qc bench ...`: figures with their conditions, side by side."""
