"""Benchmarks: a synthetic scheme generator and the detection, delivery and report benchmarks (see README.md)."""
