"""Read-only checks of the switch: underlay status and verification (OSPF, BFD, ECMP across OSPF/zebra/kernel).

`collect` reads through injected readers (FRR JSON: a `ShowJson` such as tor_agent.frr's Vtysh; the kernel
FIB: tor_agent.net.kernel_routes); `status` and `verify` are pure.
"""

from __future__ import annotations

from tor_agent.health.frr_state import FrrOutputError, ShowJson
from tor_agent.health.underlay import Degraded, UnderlayState, UnderlayStatus, collect, judge, status, verify

__all__ = [
    "Degraded",
    "FrrOutputError",
    "ShowJson",
    "UnderlayState",
    "UnderlayStatus",
    "collect",
    "judge",
    "status",
    "verify",
]
