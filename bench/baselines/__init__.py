"""Baselines the benchmarks run beside lockhook, on the same machine, with the same load generator."""
