"""The ledger: names of the interfaces tor-agent has configured OSPF on.

It answers one question only: "was the OSPF configuration of this interface made by tor-agent?",
so that the OSPF lines of an uplink that left the intent can be removed while OSPF lines a person
put on any other interface are never touched. What to change is always computed from FRR's live
running configuration, never from this file. A missing ledger means "nothing known": stale
uplinks are then reported, not removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tor_agent.errors import RuntimeFailure
from tor_agent.fileio import replace_file

DEFAULT_STATE_DIR = Path("/var/lib/tor-agent")
LEDGER_FILE = "frr-interfaces.json"
_VERSION = 1


class LedgerError(RuntimeFailure):
    """The ledger file cannot be read or written; names the file."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class InterfaceLedger:
    """The ledger file at `path` (normally /var/lib/tor-agent/frr-interfaces.json)."""

    path: Path

    @classmethod
    def in_dir(cls, state_dir: Path) -> InterfaceLedger:
        """The ledger kept in tor-agent's state directory `state_dir`."""
        return cls(state_dir / LEDGER_FILE)

    def load(self) -> frozenset[str]:
        """The recorded interface names (empty when there is no ledger yet)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return frozenset()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LedgerError(self.path, f"cannot read: {e} (remove it to forget which interfaces were ours)") from e
        names = data.get("interfaces") if isinstance(data, dict) and data.get("version") == _VERSION else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise LedgerError(self.path, f"not a version {_VERSION} ledger (remove it to forget which were ours)")
        return frozenset(names)

    def save(self, names: Iterable[str]) -> None:
        """Record `names`, replacing the file atomically; no write when nothing changed."""
        wanted = frozenset(names)
        if self.path.exists() and self.load() == wanted:
            return
        text = json.dumps({"version": _VERSION, "interfaces": sorted(wanted)}, indent=1) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, text, mode=0o600)
        except OSError as e:
            raise LedgerError(self.path, f"cannot write: {e}") from e
