"""What tor-agent owns in FRR, and the smallest command batch that makes FRR match a rendering (pure).

Ownership (docs/frr-ownership.md): the `ip ospf ...` lines of the interfaces tor-agent renders (plus
those of interfaces it configured before, from its ledger), the whole default-VRF `router ospf`
stanza, the BFD profile `tor-agent`, and the global lines it renders. Nothing else is ever removed.

The delta is computed per stanza as sets of exact lines (never substrings): lines to remove, then
lines to add. When an added line sets the same single-valued command as a removed one (a cost, an
interval, `maximum-paths`, `X` versus `no X`), only the new line is sent: FRR overwrites the value
in place, so nothing falls back to a default in between and no adjacency is reset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tor_agent.frr.config_tree import ContextPath, FrrConfig, redact

BFD_PROFILE = "tor-agent"
# FRR 8.4 shows the system hostname and the start-up profile of its daemons: neither changes with a
# config line (measured: `hostname X` leaves `show running-config` as it was), so they are not applied.
READ_ONLY_GLOBALS = ("hostname ", "frr defaults ")

# Single-valued commands: a new value replaces the old one in place. The group `key` names the command.
_OVERRIDES = tuple(
    re.compile(p)
    for p in (
        r"^(?P<key>ip ospf (cost|hello-interval|priority|retransmit-interval|transmit-delay)) \d+$",
        r"^(?P<key>ip ospf dead-interval) (\d+|minimal hello-multiplier \d+)$",
        r"^(?P<key>ip ospf network) \S+( \S+)?$",
        r"^(?P<key>ip ospf bfd profile) \S+$",
        r"^(?P<key>ospf router-id) \S+$",
        r"^(?P<key>auto-cost reference-bandwidth) \d+$",
        r"^(?P<key>maximum-paths) \d+$",
        r"^(?P<key>timers (throttle lsa all|lsa min-arrival)) \d+$",
        r"^(?P<key>timers throttle spf) \d+ \d+ \d+$",
        r"^(?P<key>detect-multiplier|transmit-interval|receive-interval|echo-interval|minimum-ttl) \d+$",
        r"^(?P<key>echo (receive|transmit)-interval) \d+$",
        r"^(?P<key>log syslog)( \S+)?$",
    )
)
# Commands FRR 8.4 has no `no` form for with a value (`vtysh -C` rejects `no maximum-paths 8`, and
# every `no` form of the BFD timers): reset them like this instead. BFD values are FRR's defaults.
_RESETS = {
    "maximum-paths": "no maximum-paths",
    "detect-multiplier": "detect-multiplier 3",
    "transmit-interval": "transmit-interval 300",
    "receive-interval": "receive-interval 300",
    "echo-interval": "echo-interval 50",
    "echo receive-interval": "echo receive-interval 50",
    "echo transmit-interval": "echo transmit-interval 50",
}
# Order of contexts in a batch: what others refer to (the BFD profile, the OSPF instance with its
# router-id) is added before the interfaces that use it, and removed after them.
_RANKS = (("bfd", 1), ("router ", 2), ("interface ", 3))

Op = Literal["add", "remove", "replace"]


@dataclass(frozen=True)
class Scope:
    """The FRR lines tor-agent owns; see the module docstring."""

    interfaces: frozenset[str]
    global_keys: frozenset[str]
    bfd_profile: str = BFD_PROFILE

    @classmethod
    def of(cls, desired: FrrConfig, ledger: Iterable[str] = (), bfd_profile: str = BFD_PROFILE) -> Scope:
        """The scope of a rendering `desired`, plus the interfaces tor-agent configured before (`ledger`)."""
        return cls(
            interfaces=frozenset(rendered_interfaces(desired)) | frozenset(ledger),
            global_keys=frozenset(override_key(line) for line in desired.lines(()) if not _read_only(line)),
            bfd_profile=bfd_profile,
        )

    def owns(self, path: ContextPath, line: str) -> bool:
        """Whether tor-agent owns `line` in context `path` (and may therefore change or remove it)."""
        if not path:
            return not _read_only(line) and override_key(line) in self.global_keys
        head = path[0]
        if head == "router ospf":
            return True
        if head == "bfd":
            profile = f"profile {self.bfd_profile}"
            return path[1:] == (profile,) or (len(path) == 1 and line == profile)
        name = _interface_name(head)
        return len(path) == 1 and name in self.interfaces and line.startswith("ip ospf ")


@dataclass(frozen=True)
class Change:
    """One line to add, remove, or replace (`old` -> `line`) in context `path`."""

    path: ContextPath
    op: Op
    line: str
    old: str | None = None
    opens_context: bool = False  # the line is a nested context header (`profile tor-agent`)

    @property
    def command(self) -> str:
        """The command that makes the change in FRR."""
        return removal_command(self.line) if self.op == "remove" else self.line

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, keys redacted."""
        data: dict[str, object] = {"context": list(self.path), "op": self.op, "line": redact(self.line)}
        if self.old is not None:
            data["old"] = redact(self.old)
        return data


@dataclass(frozen=True)
class Delta:
    """The ordered changes that bring FRR to the desired configuration, and notes for the operator."""

    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def commands(self) -> str:
        """The vtysh batch (`vtysh -f` input): every change inside its context, removals first."""
        out: list[str] = []
        for path, group in _groups(self.changes):
            out.extend(" " * depth + header for depth, header in enumerate(path))
            for change in group:
                out.append(" " * len(path) + change.command)
                if change.opens_context:
                    out.append(" " * len(path) + "exit")
            out.extend(" " * depth + "exit" for depth in reversed(range(len(path))))
        return "".join(f"{line}\n" for line in out)

    def diff_text(self) -> str:
        """The changes for people: `-`/`+` lines under their context headers, keys redacted."""
        out: list[str] = []
        for path, group in _groups(self.changes):
            out.extend(" " * depth + header for depth, header in enumerate(path))
            pad = " " * len(path)
            for change in group:
                if change.old is not None:
                    out.append(f"-{pad}{redact(change.old)}")
                sign = "-" if change.op == "remove" else "+"
                out.append(f"{sign}{pad}{redact(change.line)}")
        return "".join(f"{line}\n" for line in out)


def compute_delta(desired: FrrConfig, running: FrrConfig, scope: Scope) -> Delta:
    """The changes that make the owned lines of `running` equal to those of `desired`."""
    removes: list[Change] = []
    adds: list[Change] = []
    dropped: set[ContextPath] = set()
    for path in _paths(desired, running):
        if any(path[:n] in dropped for n in range(1, len(path) + 1)):
            continue  # the whole context is removed with its header
        want = [line for line in desired.lines(path) if scope.owns(path, line)]
        have = [line for line in running.lines(path) if scope.owns(path, line)]
        gone = [line for line in reversed(have) if line not in want]
        unreplaced = {override_key(line): line for line in gone}
        for line in (line for line in want if line not in have):
            old = unreplaced.pop(override_key(line), None)
            opens = (*path, line) in desired.stanzas
            adds.append(Change(path, "add" if old is None else "replace", line, old, opens))
        still_gone = set(unreplaced.values())
        for line in (line for line in gone if line in still_gone):
            removes.append(Change(path, "remove", line))
            if (*path, line) in running.stanzas:
                dropped.add((*path, line))
    removes.sort(key=lambda c: -_rank(c.path))
    adds.sort(key=lambda c: _rank(c.path))
    return Delta(tuple(removes + adds), _notes(desired, running, scope))


def override_key(line: str) -> str:
    """Lines with the same key set the same thing: the newer one replaces the older in FRR."""
    if line.startswith("no "):
        return f"set {line[3:]}"
    for pattern in _OVERRIDES:
        m = pattern.match(line)
        if m:
            return f"key {m.group('key')}"
    return f"set {line}"


def removal_command(line: str) -> str:
    """The command that removes `line` (`no LINE`, `X` for `no X`, or a reset for value-only commands)."""
    if line.startswith("no "):
        return line[3:]
    return _RESETS.get(override_key(line).removeprefix("key "), f"no {line}")


def rendered_interfaces(config: FrrConfig) -> list[str]:
    """The names of the default-VRF interfaces that have a stanza in `config`."""
    names = (_interface_name(path[0]) for path in config.paths() if len(path) == 1)
    return [name for name in names if name is not None]


def _interface_name(header: str) -> str | None:
    words = header.split()
    return words[1] if len(words) == 2 and words[0] == "interface" else None


def _read_only(line: str) -> bool:
    return line.startswith(READ_ONLY_GLOBALS)


def _rank(path: ContextPath) -> int:
    if not path:
        return 0
    return next((rank for prefix, rank in _RANKS if path[0].startswith(prefix)), len(_RANKS) + 1)


def _paths(desired: FrrConfig, running: FrrConfig) -> list[ContextPath]:
    """Every context of either config, desired ones first, parents before their children."""
    seen = dict.fromkeys(desired.paths())
    seen.update(dict.fromkeys(running.paths()))
    return sorted(seen, key=len)


def _groups(changes: Iterable[Change]) -> list[tuple[ContextPath, list[Change]]]:
    groups: list[tuple[ContextPath, list[Change]]] = []
    for change in changes:
        if groups and groups[-1][0] == change.path:
            groups[-1][1].append(change)
        else:
            groups.append((change.path, [change]))
    return groups


def _notes(desired: FrrConfig, running: FrrConfig, scope: Scope) -> tuple[str, ...]:
    notes = []
    for line in desired.lines(()):
        if _read_only(line) and line not in running.lines(()):
            shown = [have for have in running.lines(()) if have.split()[0] == line.split()[0]]
            notes.append(
                f"`{line}` not applied: FRR 8.4 cannot change it at run time (it shows {shown or 'nothing'}); "
                + ("set the system hostname" if line.startswith("hostname ") else "restart FRR with it")
            )
    for path in running.paths():
        name = _interface_name(path[0]) if len(path) == 1 else None
        if (
            name is not None
            and name not in scope.interfaces
            and any(line.startswith("ip ospf ") for line in running.lines(path))
        ):
            notes.append(f"interface {name}: OSPF lines not made by tor-agent, left as they are")
    return tuple(notes)
