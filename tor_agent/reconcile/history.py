"""The intents this switch has run: the last N, each with its intent file and rendered frr.conf, under
/var/lib/tor-agent/history/<id>/ (intent.yaml, frr.conf, meta.json), so that any of them can be shown, compared
and applied again.

An entry is recorded when an intent is applied that differs from the newest entry (by the SHA-256 of its text):
at the daemon's start, on reload, by `tor-agent apply` (through the daemon or not), by `rollback`, and by a
commit-confirm that timed out or saw health degrade. `current.json` says which entry runs now and whether it was
pinned (by a rollback): a pinned entry keeps running across an agent restart, instead of the intent file, until
the next explicit apply or reload. Files a stored intent names (an OSPF key file, TLS files) are not copied:
they are read from their paths again when the entry is applied.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tor_agent.errors import RuntimeFailure
from tor_agent.fileio import replace_file

DEFAULT_SIZE = 20
Who = Literal["start", "cli", "reload", "rollback", "confirm-timeout", "degraded"]


class HistoryError(RuntimeFailure):
    """The history cannot be read or written, or has no such entry; names the file or the entry."""


@dataclass(frozen=True)
class Entry:
    """One applied intent."""

    id: int
    time: float  # Unix time of the apply
    sha256: str  # of the intent file's text
    who: str  # start | cli | reload | rollback | confirm-timeout | degraded
    source: str  # the intent file it was read from
    base_dir: str  # where relative paths in it resolve (the source file's directory)
    confirmed: bool = True  # False while a commit-confirm waits for `tor-agent confirm`

    def as_json(self) -> dict[str, Any]:
        """The entry as plain data."""
        return asdict(self)


def digest(text: str) -> str:
    """The SHA-256 of an intent's text, as hex (what `sha256sum` prints for the file).

    From CPython's own SHA-256 (`_sha2`, `_sha256` before 3.12), which hashlib falls back to: hashlib would load
    OpenSSL's libcrypto (3.5 MB resident, for good) into the agent for one hash per intent change."""
    try:
        module = importlib.import_module("_sha2")
    except ImportError:
        module = importlib.import_module("_sha256")
    return str(module.sha256(text.encode()).hexdigest())


@dataclass(frozen=True)
class History:
    """The history in `directory`, keeping the newest `size` entries."""

    directory: Path
    size: int = DEFAULT_SIZE

    @classmethod
    def in_dir(cls, state_dir: Path, size: int = DEFAULT_SIZE) -> History:
        return cls(state_dir / "history", size)

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        found = []
        for path in self._dirs():
            entry = self._meta(path)
            if entry is not None:
                found.append(entry)
        return found

    def get(self, entry_id: int) -> Entry:
        """The entry `entry_id`. Raises HistoryError."""
        entry = self._meta(self.directory / f"{entry_id:06d}")
        if entry is None:
            known = ", ".join(str(e.id) for e in self.entries()) or "none"
            raise HistoryError(f"no history entry {entry_id} (entries: {known}; see `tor-agent history`)")
        return entry

    def intent_text(self, entry: Entry) -> str:
        """The intent file as it was applied."""
        return self._read(self.directory / f"{entry.id:06d}" / "intent.yaml")

    def frr_text(self, entry: Entry) -> str:
        """The frr.conf it rendered to."""
        return self._read(self.directory / f"{entry.id:06d}" / "frr.conf")

    def record(self, text: str, frr_text: str, who: Who, source: Path, confirmed: bool = True) -> Entry:
        """Add an entry unless the newest one holds the same intent (then that one is returned); keep `size`."""
        entries = self.entries()
        sha = digest(text)
        if entries and entries[-1].sha256 == sha and entries[-1].confirmed == confirmed:
            return entries[-1]
        next_id = entries[-1].id + 1 if entries else 1
        entry = Entry(next_id, round(time.time(), 3), sha, who, str(source), str(source.parent), confirmed)
        path = self.directory / f"{next_id:06d}"
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            replace_file(path / "intent.yaml", text, mode=0o600)
            replace_file(path / "frr.conf", frr_text, mode=0o600)  # may hold an OSPF key
            replace_file(path / "meta.json", json.dumps(entry.as_json(), indent=1) + "\n", mode=0o600)
        except OSError as e:
            raise HistoryError(f"{path}: cannot record the intent: {e}") from e
        for old in self._dirs()[: -self.size]:
            shutil.rmtree(old, ignore_errors=True)
        return entry

    def mark_confirmed(self, entry: Entry) -> Entry:
        """The entry, confirmed."""
        confirmed = Entry(**{**asdict(entry), "confirmed": True})
        path = self.directory / f"{entry.id:06d}" / "meta.json"
        try:
            replace_file(path, json.dumps(confirmed.as_json(), indent=1) + "\n", mode=0o600)
        except OSError as e:
            raise HistoryError(f"{path}: cannot write: {e}") from e
        return confirmed

    def current(self) -> tuple[int | None, bool]:
        """(the id of the entry running now, whether it is pinned); (None, False) when not known."""
        try:
            data = json.loads((self.directory / "current.json").read_text())
            return int(data["id"]), bool(data.get("pinned", False))
        except (OSError, ValueError, KeyError, TypeError):
            return None, False

    def set_current(self, entry: Entry, pinned: bool) -> None:
        """Record that `entry` runs now (`pinned`: instead of the intent file, until the next apply or reload)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            doc = json.dumps({"id": entry.id, "pinned": pinned}) + "\n"
            replace_file(self.directory / "current.json", doc, mode=0o600)
        except OSError as e:
            raise HistoryError(f"{self.directory / 'current.json'}: cannot write: {e}") from e

    def previous(self) -> Entry:
        """The entry before the one running now (the default of `tor-agent rollback`). Raises HistoryError."""
        current, _ = self.current()
        entries = self.entries()
        before = [e for e in entries if current is None or e.id < current]
        if current is None and before:
            before = before[:-1]
        if not before:
            raise HistoryError("no earlier intent in the history to roll back to (see `tor-agent history`)")
        return before[-1]

    def _dirs(self) -> list[Path]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(p for p in self.directory.iterdir() if p.is_dir() and p.name.isdigit())
        return []

    def _meta(self, path: Path) -> Entry | None:
        try:
            data = json.loads((path / "meta.json").read_text())
            return Entry(**{k: data[k] for k in Entry.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError):
            return None

    def _read(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise HistoryError(f"{path}: cannot read: {e}") from e
