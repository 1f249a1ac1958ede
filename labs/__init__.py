"""The lab: containerlab topologies and their image (`containerlab/`), the namespace realiser behind
`labs/lab` (`nslab`), and the kit that tests and benchmarks drive a running lab with (`labkit`).

Imported from the repository root: the tests find it through pytest's `pythonpath` (pyproject.toml), the
benchmarks run as `python3 -m bench.NAME` from the root, and `labs/lab` puts the root on its own path.
"""
