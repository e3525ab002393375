"""Benchmarks run by ``python -m streamlib bench WHAT``; results are recorded in ``benchmarks/``."""
