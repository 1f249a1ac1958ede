"""Fixtures for the tests against real FRR 8.4 daemons in private namespaces (see frrnode.py).

Skipped with the reason where root or FRR is missing, except under CI (CI=true), which always has
them: there a missing prerequisite fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from frrnode import FrrNode, skip_reason
from prerequisites import skip_or_fail


@pytest.fixture
def frr_node() -> Iterator[Callable[[str], FrrNode]]:
    """`frr_node("leaf1")` starts a node with FRR running and hostname leaf1; all end after the test."""
    skip_or_fail(skip_reason(), "FRR tests")
    nodes: list[FrrNode] = []

    def make(name: str) -> FrrNode:
        node = FrrNode(name)
        nodes.append(node)
        node.start().start_frr()
        return node

    try:
        yield make
    finally:
        for node in nodes:
            node.close()
