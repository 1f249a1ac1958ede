"""What a pass reports: per stage what it changed (or would change), its typed errors and notes. Plain data.

The daemon writes `EngineReport.as_json()` to its status file and answers `tor-agent apply` with it over its
control socket; the CLI prints either the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from tor_agent.errors import PartMissing, RuntimeFailure
from tor_agent.model.peers import NO_PEERS, Peers

STAGES = ("ovs", "links", "frr", "peers", "tunnels", "routes")
LABELS = {"ovs": "OVS", "links": "links", "frr": "FRR", "peers": "peers", "tunnels": "tunnels", "routes": "OVS routes"}


def error_json(error: RuntimeFailure) -> dict[str, Any]:
    """One error as plain data: its kind (class name), message, whether a retry may help, and its subject
    (the intent field and object) when it names one."""
    return {
        "kind": type(error).__name__,
        "message": str(error),
        "retryable": error.retryable,
        "subject": error.subject if isinstance(error, PartMissing) else None,
    }


@dataclass(frozen=True)
class StageReport:
    """One stage of a pass: what it changed (or would change), what went wrong, or why it did not run."""

    stage: str
    changes: tuple[str, ...] = ()
    errors: tuple[RuntimeFailure, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: str = ""
    seconds: float = 0.0
    detail: str = ""  # FRR: the change as a diff of the configuration text
    data: Mapping[str, Any] = field(default_factory=dict, compare=False)  # the stage's own structured details

    @property
    def label(self) -> str:
        """How reports name the stage."""
        return LABELS.get(self.stage, self.stage)

    @property
    def problems(self) -> tuple[str, ...]:
        """Every error as one line."""
        return tuple(str(e) for e in self.errors)

    @property
    def unreachable(self) -> bool:
        """A daemon did not answer: worth retrying soon."""
        return any(e.retryable for e in self.errors)

    @property
    def missing(self) -> tuple[str, ...]:
        """The parts the intent names that are not there (each skipped, the rest applied)."""
        return tuple(e.subject for e in self.errors if isinstance(e, PartMissing))

    def as_json(self) -> dict[str, Any]:
        """The stage as plain data."""
        return {
            "stage": self.stage,
            "label": self.label,
            "changes": list(self.changes),
            "problems": list(self.problems),
            "errors": [error_json(e) for e in self.errors],
            "notes": list(self.notes),
            "skipped": self.skipped or None,
            "unreachable": self.unreachable,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "data": dict(self.data),
        }


@dataclass(frozen=True)
class EngineReport:
    """One pass: a report per stage, the peers it chose, how long it took."""

    hostname: str
    scope: str
    stages: tuple[StageReport, ...]
    peers: Peers = NO_PEERS
    seconds: float = 0.0
    held: Mapping[IPv4Address, float] = field(default_factory=dict)  # peer -> seconds its tunnel is still kept
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        """Whether anything was changed (or, for a diff, would be)."""
        return any(s.changes for s in self.stages)

    @property
    def problems(self) -> tuple[str, ...]:
        """Every problem, each naming its stage."""
        return tuple(labelled(s.label, p) for s in self.stages for p in s.problems)

    @property
    def missing(self) -> tuple[str, ...]:
        """Every part the intent names that is not there, once each."""
        return tuple(dict.fromkeys(m for s in self.stages for m in s.missing))

    @property
    def unreachable(self) -> bool:
        """Whether a daemon the pass needs did not answer."""
        return any(s.unreachable for s in self.stages)

    @property
    def ok(self) -> bool:
        """No problem at all."""
        return not self.problems

    def stage(self, name: str) -> StageReport | None:
        """The report of stage `name`, if it ran or was skipped in this pass."""
        return next((s for s in self.stages if s.stage == name), None)

    def summary(self) -> str:
        """One line: how many changes per stage, problems, missing parts, peers."""
        changed = ", ".join(f"{s.label} {len(s.changes)}" for s in self.stages if s.changes) or "nothing changed"
        problems = f", {len(self.problems)} problem(s)" if self.problems else ""
        missing = f", {len(self.missing)} missing: {', '.join(self.missing)}" if self.missing else ""
        held = f" (+{len(self.held)} held)" if self.held else ""
        peers = f"{len(self.peers.usable)} tunnel peer(s){held}"
        return f"{self.scope} pass: {changed}{problems}{missing}, {peers}, {self.seconds:.2f}s"

    def as_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "hostname": self.hostname,
            "scope": self.scope,
            "changed": self.changed,
            "ok": self.ok,
            "problems": list(self.problems),
            "missing": list(self.missing),
            "stages": [s.as_json() for s in self.stages],
            "peers": {str(p): str(r.prefix) for p, r in sorted(self.peers.usable.items())},
            "dropped_peers": {str(p): why for p, why in sorted(self.peers.dropped.items())},
            "held_peers": {str(p): round(left, 1) for p, left in sorted(self.held.items())},
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
        }


def labelled(label: str, problem: str) -> str:
    """`FRR: <problem>` unless the problem already starts with the stage's label."""
    return problem if problem.startswith(label) else f"{label}: {problem}"
