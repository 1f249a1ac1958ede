"""Apply a rendered FRR configuration safely: parser check, live delta, one batch, verify, persist.

The delta is always computed against FRR's live running configuration, so hand edits are seen and
repaired. On any failure once FRR has been touched, the owned lines are put back as they were in
the running configuration read at the start, and that restore is verified too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tor_agent.errors import RuntimeFailure
from tor_agent.frr.config_tree import FrrConfig, parse_config, redact
from tor_agent.frr.delta import BFD_PROFILE, Change, Delta, Scope, compute_delta, rendered_interfaces
from tor_agent.frr.ledger import InterfaceLedger
from tor_agent.frr.vtysh import LinesRefused, Vtysh

log = logging.getLogger(__name__)

_SHOWN_CHANGES = 5


class ConfigRefused(RuntimeFailure):
    """FRR's parser refused the rendered configuration or the command batch; FRR was not touched."""

    def __init__(self, cause: LinesRefused, rendered_lines: int) -> None:
        self.cause = cause
        where = [
            f"rendered frr.conf line {e.number}"
            if e.number <= rendered_lines
            else f"batch line {e.number - rendered_lines}"
            for e in cause.errors
        ]
        details = "; ".join(f"{w}: `{e.line}`: {e.message}" for w, e in zip(where, cause.errors, strict=True))
        super().__init__(f"FRR's parser (vtysh -C) refused {details or cause.detail}; nothing was changed")


class NotApplied(RuntimeFailure):
    """FRR's running configuration still differs from the desired one after a change; names what is left."""

    def __init__(self, left: Delta) -> None:
        self.left = left
        shown = [_left_over(c) for c in left.changes[:_SHOWN_CHANGES]]
        more = f" and {len(left.changes) - _SHOWN_CHANGES} more" if len(left.changes) > _SHOWN_CHANGES else ""
        super().__init__(f"FRR's running configuration still differs: {'; '.join(shown)}{more}")


class DaemonsDown(RuntimeFailure):
    """FRR daemons the configuration needs do not answer vtysh (FRR would silently drop their lines)."""

    def __init__(self, missing: frozenset[str]) -> None:
        self.missing = missing
        names = ", ".join(sorted(missing))
        super().__init__(f"FRR daemon(s) not running or not answering vtysh: {names} (check `systemctl status frr`)")


class ApplyFailed(RuntimeFailure):
    """A step failed after FRR was changed; says which step, why, and whether the rollback worked."""

    def __init__(self, step: str, cause: RuntimeFailure, rollback_error: RuntimeFailure | None) -> None:
        self.step = step
        self.cause = cause
        self.rollback_error = rollback_error
        if rollback_error is None:
            outcome = "rolled back to the previous running configuration"
        else:
            outcome = (
                f"ROLLBACK FAILED ({rollback_error}): FRR is part-way between the old and new configuration; "
                "check `tor-agent diff` and fix it by hand"
            )
        super().__init__(f"FRR {step} failed: {cause}; {outcome}")


@dataclass(frozen=True)
class FrrApplyResult:
    """What an apply did: the delta it applied (empty when FRR already matched)."""

    delta: Delta

    @property
    def changed(self) -> bool:
        """Whether FRR was changed."""
        return bool(self.delta)


@dataclass(frozen=True)
class FrrDriver:
    """Makes FRR match a rendered configuration; `ledger` None means stale uplinks are only reported."""

    vtysh: Vtysh
    ledger: InterfaceLedger | None = None
    bfd_profile: str = BFD_PROFILE

    def diff(self, desired_text: str) -> Delta:
        """What `apply(desired_text)` would change now. Changes nothing."""
        desired = parse_config(desired_text)
        scope = Scope.of(desired, self._recorded(), self.bfd_profile)
        return compute_delta(desired, self._read(desired), scope)

    def apply(self, desired_text: str) -> FrrApplyResult:
        """Make FRR's owned lines equal `desired_text`, persist, verify; roll back on any failure."""
        desired = parse_config(desired_text)
        recorded = self._recorded()
        scope = Scope.of(desired, recorded, self.bfd_profile)
        previous = self._read(desired)
        delta = compute_delta(desired, previous, scope)
        mine = rendered_interfaces(desired)
        if not delta:
            self._record(mine)
            return FrrApplyResult(delta)
        try:
            self.vtysh.check(_with_end(desired_text) + delta.commands())
        except LinesRefused as e:
            raise ConfigRefused(e, len(_with_end(desired_text).splitlines())) from e
        self._record(recorded | frozenset(mine))  # before touching FRR: an unwritable ledger stops here
        self._change(delta, desired, previous, scope, recorded)
        self._record(mine)
        return FrrApplyResult(delta)

    def _change(
        self, delta: Delta, desired: FrrConfig, previous: FrrConfig, scope: Scope, recorded: frozenset[str]
    ) -> None:
        step = "apply"
        try:
            log.info("FRR: applying %d changes", len(delta.changes))
            self.vtysh.apply(delta.commands())
            step = "verify"
            self._verify(desired, scope)
            step = "persist (vtysh -w)"
            self.vtysh.write_memory()
        except RuntimeFailure as e:
            log.error("FRR %s failed (%s): rolling back", step, e)
            rollback_error = self._roll_back(previous, scope)
            if rollback_error is None:
                self._record(recorded)
            raise ApplyFailed(step, e, rollback_error) from e

    def _roll_back(self, previous: FrrConfig, scope: Scope) -> RuntimeFailure | None:
        try:
            back = compute_delta(previous, self._read(previous), scope)
            if back:
                try:
                    self.vtysh.apply(back.commands())
                except LinesRefused as e:
                    log.warning("FRR refused part of the rollback (%s); checking what is left", e)
            self._verify(previous, scope)
        except RuntimeFailure as e:
            return e
        return None

    def _verify(self, desired: FrrConfig, scope: Scope) -> None:
        left = compute_delta(desired, self._read(desired), scope)
        if left:
            raise NotApplied(left)

    def _read(self, desired: FrrConfig) -> FrrConfig:
        running = self.vtysh.running()
        missing = required_daemons(desired) - running.daemons
        if missing:
            raise DaemonsDown(missing)
        return parse_config(running.text)

    def _recorded(self) -> frozenset[str]:
        return self.ledger.load() if self.ledger is not None else frozenset()

    def _record(self, names: frozenset[str] | list[str]) -> None:
        if self.ledger is not None:
            self.ledger.save(names)


def required_daemons(config: FrrConfig) -> frozenset[str]:
    """The FRR daemons that hold the lines of `config` tor-agent cares about."""
    needed = {"zebra"}
    for path in config.paths():
        if path[:1] == ("router ospf",) or any(line.startswith("ip ospf ") for line in config.lines(path)):
            needed.add("ospfd")
        if path[:1] == ("bfd",):
            needed.add("bfdd")
    return frozenset(needed)


def _left_over(change: Change) -> str:
    where = " / ".join(change.path) or "global"
    if change.op == "remove":
        return f"{where}: `{redact(change.line)}` is still there"
    has = f" (FRR has `{redact(change.old)}`)" if change.old is not None else ""
    return f"{where}: `{redact(change.line)}` is missing{has}"


def _with_end(text: str) -> str:
    """`text` closed with `end`, so a batch appended to it starts at the top level."""
    return text if text.rstrip().endswith("\nend") else text.rstrip("\n") + "\nend\n"
