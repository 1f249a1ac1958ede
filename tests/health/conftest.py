"""Fixtures for the underlay health tests: a 2-spine, 2-leaf FRR fabric in namespaces (frrlab.py).

Skipped with the reason where root or FRR is missing, except under CI (CI=true), which always has
them: there a missing prerequisite fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from frrlab import Fabric, skip_reason, wait_healthy
from prerequisites import skip_or_fail


@pytest.fixture(scope="module")
def fabric() -> Iterator[Fabric]:
    """The fabric, converged and verifying clean; removed (processes, namespaces, files) after the module."""
    skip_or_fail(skip_reason(), "underlay health tests")
    fab = Fabric().up()
    try:
        wait_healthy(fab)
        yield fab
    except BaseException:
        print(fab.logs())
        raise
    finally:
        fab.down()
