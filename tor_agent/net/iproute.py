"""pyroute2's IPRoute and NetlinkError, imported without running pyroute2/__init__.py.

That file imports every pyroute2 module (NDB, IPDB, nftables, ...) and, in 0.7, scans the entry points of
every installed distribution: 14 MB of a 46 MB agent on Debian 12 and 40 ms of every CLI start. IPRoute
and NetlinkError need nothing from it (checked with 0.7.2 and 0.9). A pyroute2 already imported (by a
caller that uses more of it) is used as it is. The only module importing pyroute2.

Two more costs of 0.7 (Debian 12) are avoided the way 0.9 avoids them itself:
- `pyroute2.lab` imports `unittest.mock` (and with it asyncio and ssl: 6 MB, 25 ms) for a test hook that is
  off unless pyroute2's own test lab turns it on; the stand-in below is that module with the hook off;
- `pyroute2.config` calls `platform.architecture()`, which runs `file` on the interpreter (a process start
  for the word "64bit"); during its import it gets the answer without the process, as 0.9 asks for it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import platform
import sys
import types
from collections.abc import Iterator
from typing import Any


def _bare_package(name: str) -> None:
    """Register package `name` without running its __init__.py; its submodules import as usual."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:
        sys.modules[name] = importlib.util.module_from_spec(spec)


class _LabApi:
    """pyroute2.lab.LAB_API with its mock hook off: a plain mixin."""

    def __init__(self, *argv: Any, **kwarg: Any) -> None:
        super().__init__(*argv, **kwarg)


def _lab_without_mock() -> None:
    """Register pyroute2.lab (0.7 only: 0.9 has none) as it is with `use_mock` False, without unittest.mock."""
    if "pyroute2.lab" in sys.modules or importlib.util.find_spec("pyroute2.lab") is None:
        return
    lab = types.ModuleType("pyroute2.lab", "pyroute2's test hook, off (tor_agent.net.iproute)")
    lab.registry = []  # type: ignore[attr-defined]
    lab.use_mock = False  # type: ignore[attr-defined]
    lab.LAB_API = _LabApi  # type: ignore[attr-defined]
    sys.modules["pyroute2.lab"] = lab


@contextlib.contextmanager
def _architecture_without_file() -> Iterator[None]:
    original = platform.architecture

    def architecture(executable: str = "", bits: str = "", linkage: str = "") -> tuple[str, str]:
        return original("", bits, linkage)

    platform.architecture = architecture
    try:
        yield
    finally:
        platform.architecture = original


_bare_package("pyroute2")
_lab_without_mock()
with _architecture_without_file():
    from pyroute2.iproute.linux import IPRoute  # (after _bare_package, deliberately)
    from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["IPRoute", "NetlinkError"]
