"""What `fabric render` and `fabric check` report: errors, warnings and notes, each naming what it concerns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Finding:
    """One problem (error), risk (warning) or remark (note) about a topology, its settings or its intents.

    `subject` says where (a file and path, a link with both ends, a pair of nodes); `nodes` lists the
    switches concerned, for tools reading the JSON.
    """

    severity: Severity
    subject: str
    message: str
    nodes: tuple[str, ...] = ()

    def text(self) -> str:
        """One line for the operator; errors read like every other tor-agent error (`WHERE: WHAT`)."""
        line = f"{self.subject}: {self.message}" if self.subject else self.message
        return line if self.severity == "error" else f"{self.severity}: {line}"

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "message": self.message, "nodes": list(self.nodes)}


@dataclass
class Findings:
    """Collects findings in the order they are found."""

    items: list[Finding] = field(default_factory=list)

    def error(self, subject: str, message: str, nodes: Iterable[str] = ()) -> None:
        self.items.append(Finding("error", subject, message, tuple(nodes)))

    def warning(self, subject: str, message: str, nodes: Iterable[str] = ()) -> None:
        self.items.append(Finding("warning", subject, message, tuple(nodes)))

    def note(self, subject: str, message: str, nodes: Iterable[str] = ()) -> None:
        self.items.append(Finding("note", subject, message, tuple(nodes)))

    def extend(self, other: Iterable[Finding]) -> None:
        self.items.extend(other)

    def of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.items if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    def count(self) -> int:
        """How many errors so far (to tell whether a step added any)."""
        return len(self.errors)


def names(nodes: Iterable[str], limit: int = 8) -> str:
    """`a, b and c`; past `limit` names, `a, b, ... and 12 more`."""
    items = list(nodes)
    if len(items) > limit:
        return f"{', '.join(items[: limit - 1])} and {len(items) - limit + 1} more"
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
