"""How healthy the switch is, in a few numbers that can be compared before and after a change: OSPF neighbours
Full, the ECMP width to every VTEP, controllers connected, tunnels up. Pure; `apply --rollback-on-degrade` rolls
back as soon as any of them gets worse than before the change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Score:
    """The numbers that must not get worse."""

    full: int = 0  # uplinks with a Full OSPF neighbour (and BFD up, where it runs)
    widths: Mapping[str, int] = field(default_factory=dict)  # VTEP -> kernel ECMP width
    controllers: int = 0  # OpenFlow controllers connected
    tunnels: int = 0  # tunnel peers with a tunnel

    def as_json(self) -> dict[str, Any]:
        return {
            "full": self.full,
            "widths": dict(self.widths),
            "controllers": self.controllers,
            "tunnels": self.tunnels,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Score:
        widths = data.get("widths") or {}
        return cls(int(data.get("full", 0)), {str(k): int(v) for k, v in widths.items()},
                   int(data.get("controllers", 0)), int(data.get("tunnels", 0)))  # fmt: skip

    def worse_than(self, before: Score) -> list[str]:
        """Every way this score is worse than `before`, one line each (empty: not worse)."""
        found = []
        if self.full < before.full:
            found.append(f"uplinks Full {before.full} -> {self.full}")
        for vtep, width in sorted(before.widths.items()):
            now = self.widths.get(vtep, 0)
            if now < width:
                found.append(f"ECMP width to {vtep} {width} -> {now}")
        if self.controllers < before.controllers:
            found.append(f"controllers connected {before.controllers} -> {self.controllers}")
        if self.tunnels < before.tunnels:
            found.append(f"tunnels {before.tunnels} -> {self.tunnels}")
        return found
