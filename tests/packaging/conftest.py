"""tests/packaging: the .deb built, linted, installed and purged on this machine (root only)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packaging: builds the .deb with `make deb`, installs and purges it (root, Debian 12, ~1 min)"
    )
