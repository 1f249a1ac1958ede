"""What the agent itself decides and must remember across restarts and reboots, under /var/lib/tor-agent:
whether the switch is drained (drain.json), and a commit-confirm that waits for `tor-agent confirm`
(confirm.json). Neither is part of the intent: the intent says what the switch is, these say what the operator
is doing with it right now.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tor_agent.errors import RuntimeFailure
from tor_agent.fileio import replace_file

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class StateError(RuntimeFailure):
    """An agent state file cannot be written; names it."""


def boot_id() -> str:
    """This boot's id: a commit-confirm pending before a reboot is not continued after it."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Drain:
    """The switch's drain state: drained switches advertise every transit link at the maximum metric."""

    drained: bool = False
    since: float | None = None  # Unix time
    forced: bool = False  # drained with --force despite the path check

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PendingConfirm:
    """An intent applied with `--confirm`: unless confirmed by `deadline`, the switch goes back to `previous`."""

    entry: int  # the history entry on trial
    previous: int  # the history entry to go back to
    deadline: float  # Unix time
    boot_id: str
    rollback_on_degrade: bool = False
    baseline: dict[str, Any] = field(default_factory=dict)  # health before the change (see tor_agent.health.score)

    def remaining(self, now: float | None = None) -> float:
        """Seconds left in the window (negative once it passed)."""
        return self.deadline - (time.time() if now is None else now)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentState:
    """The state files in `state_dir` (normally /var/lib/tor-agent)."""

    state_dir: Path

    @property
    def drain_file(self) -> Path:
        return self.state_dir / "drain.json"

    @property
    def confirm_file(self) -> Path:
        return self.state_dir / "confirm.json"

    def drain(self) -> Drain:
        """The drain state (not drained when never set or unreadable)."""
        data = _load(self.drain_file)
        if not isinstance(data, dict):
            return Drain()
        with contextlib.suppress(TypeError):
            return Drain(**{k: data[k] for k in Drain.__dataclass_fields__ if k in data})
        return Drain()

    def set_drain(self, drain: Drain) -> None:
        _save(self.drain_file, drain.as_json())

    def pending(self) -> PendingConfirm | None:
        """The commit-confirm waiting, if any."""
        data = _load(self.confirm_file)
        if not isinstance(data, dict):
            return None
        with contextlib.suppress(TypeError):
            return PendingConfirm(**{k: data[k] for k in PendingConfirm.__dataclass_fields__ if k in data})
        return None

    def set_pending(self, pending: PendingConfirm | None) -> None:
        if pending is None:
            with contextlib.suppress(FileNotFoundError):
                self.confirm_file.unlink()
            return
        _save(self.confirm_file, pending.as_json())


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _save(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o600)
    except OSError as e:
        raise StateError(f"{path}: cannot write: {e}") from e
