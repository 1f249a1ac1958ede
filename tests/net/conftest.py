"""Fixtures for the kernel links driver tests: namespaces the test creates and always deletes.

Tests needing namespaces are skipped with the reason where root/iproute2/nftables are missing, except
under CI (CI=true), which always has them: there a missing prerequisite fails the run.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest
from nsutil import Netns, skip_reason
from prerequisites import skip_or_fail

_counter = itertools.count()


@pytest.fixture
def make_netns() -> Iterator[Callable[[str], Netns]]:
    """`make_netns("leaf")` creates a namespace with a unique name; all are deleted after the test."""
    skip_or_fail(skip_reason(), "namespace tests")
    created: list[Netns] = []

    def make(role: str) -> Netns:
        ns = Netns(f"ta-{role}-{os.getpid()}-{next(_counter)}")
        created.append(ns)
        return ns

    try:
        yield make
    finally:
        for ns in created:
            ns.delete()
