"""The parts an intent names that are not there: interfaces the kernel does not have (a host not cabled yet, a
renamed port, an uplink bridge OVS has not created). Pure, over the interface names read by the caller.

The agent skips a missing part and applies everything else (tor_agent.net.plan); `verify` fails naming it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from tor_agent.health.finding import Finding
from tor_agent.model.links import LinksSpec


@dataclass(frozen=True)
class MissingPart(Finding):
    """One part the intent names that is not there; `subject` is the intent field and the interface."""

    kind: Literal["missing", "read"]


def missing_parts(spec: LinksSpec, interfaces: Collection[str]) -> list[MissingPart]:
    """Every interface of `spec` not among `interfaces`, in intent order."""
    return [
        MissingPart("missing", link.subject, f"no such interface{link.note}")
        for link in spec.links
        if link.name not in interfaces
    ]


def parts_lines(hostname: str, problems: Collection[MissingPart]) -> list[str]:
    """The verify report's lines for missing parts (none when everything is there)."""
    if not problems:
        return []
    return [f"{hostname}: parts missing ({len(problems)}):", *(f"  {p}" for p in problems)]
