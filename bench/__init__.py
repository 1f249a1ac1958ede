"""Benchmarks: each prints its figures next to a baseline measured in the same run.

Run from the repository root, as root: `python3 -m bench.NAME` (see each module's docstring).
"""
