"""Benchmarks for ollamux (see docs/benchmarks.md)."""
