"""One thing a health check found wrong: the common shape of underlay, overlay and controller findings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """`kind` is machine-readable (each check narrows it to its own literals); `subject` names what is wrong."""

    kind: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"

    def as_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"kind": self.kind, "subject": self.subject, "message": self.message}
