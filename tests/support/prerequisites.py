"""Tests that need root, namespaces or a daemon: skipped with the reason where the machine lacks it, except
under CI (CI set), which always has it: there a missing prerequisite fails the run instead."""

from __future__ import annotations

import os

import pytest


def skip_or_fail(reason: str | None, tests: str) -> None:
    """Nothing when `reason` is None; else skip (or, under CI, fail) naming the `tests` that cannot run."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the {tests}, but this machine {reason}")
    pytest.skip(reason)
