"""pyroute2's IPRoute and NetlinkError, imported without running pyroute2/__init__.py.

That file imports every pyroute2 module (NDB, IPDB, nftables, ...) and, in 0.7, scans the entry points of
every installed distribution: 14 MB of a 46 MB agent on Debian 12 and 40 ms of every CLI start. IPRoute
and NetlinkError need nothing from it (checked with 0.7.2 and 0.9). A pyroute2 already imported (by a
caller that uses more of it) is used as it is. The only module importing pyroute2.
"""

from __future__ import annotations

import importlib.util
import sys


def _bare_package(name: str) -> None:
    """Register package `name` without running its __init__.py; its submodules import as usual."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:
        sys.modules[name] = importlib.util.module_from_spec(spec)


_bare_package("pyroute2")

from pyroute2.iproute.linux import IPRoute  # noqa: E402  (after _bare_package, deliberately)
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError"]
