"""Benchmarks: each ``bench/<name>_bench.py`` has ``main(argv) -> int`` and prints its figures."""
