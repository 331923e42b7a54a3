"""Benchmarks (BENCHMARKS.md): KB generators, timing helpers and the measured workloads."""
