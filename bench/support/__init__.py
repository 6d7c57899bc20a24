"""Pieces of the benchmarks: the channel played on loopback, the servers under test, loop watching."""
