"""Apply a rendered FRR configuration safely: live delta, parser check, one batch, verify, persist.

The delta is always computed against FRR's live running configuration, so hand edits are seen and
repaired. On any failure once FRR has been touched, the owned lines are put back as they were in
the running configuration read at the start, and that restore is verified too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from tor_agent.errors import RuntimeFailure
from tor_agent.frr.config_file import IntegratedConfig
from tor_agent.frr.config_tree import FrrConfig, parse_config, redact
from tor_agent.frr.delta import BFD_PROFILE, Change, Delta, Scope, compute_delta, rendered_interfaces
from tor_agent.frr.ledger import InterfaceLedger
from tor_agent.frr.vtysh import LineError, LinesRefused, Running, Session, Vtysh

log = logging.getLogger(__name__)

_SHOWN = 5


class ConfigRefused(RuntimeFailure):
    """The desired configuration or its command batch was refused before FRR was touched."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; nothing was changed")


class NotApplied(RuntimeFailure):
    """FRR's running configuration still differs from the desired one after a batch; names what is left."""

    def __init__(self, left: Delta, messages: Iterable[LineError] = ()) -> None:
        self.left = left
        self.messages = tuple(messages)
        shown = [_left_over(c) for c in left.changes[:_SHOWN]]
        more = f" and {len(left.changes) - _SHOWN} more" if len(left.changes) > _SHOWN else ""
        said = f" (FRR said: {'; '.join(str(m) for m in self.messages)})" if self.messages else ""
        super().__init__(f"FRR's running configuration still differs: {'; '.join(shown)}{more}{said}")


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
    """What an apply did: the delta it applied (empty when FRR already matched), and what FRR said."""

    delta: Delta
    messages: tuple[LineError, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether FRR was changed."""
        return bool(self.delta)


@dataclass(frozen=True)
class FrrDriver:
    """Makes FRR match a rendered configuration.

    `ledger` None means uplinks that left the intent are only reported; `config_file` is where the
    verified running configuration is persisted.
    """

    vtysh: Vtysh
    ledger: InterfaceLedger | None = None
    bfd_profile: str = BFD_PROFILE
    config_file: IntegratedConfig = field(default_factory=IntegratedConfig)

    def diff(self, desired_text: str) -> Delta:
        """What `apply(desired_text)` would change now. Changes nothing."""
        desired = _desired(desired_text)
        scope = Scope.of(desired, self._recorded(), self.bfd_profile)
        return compute_delta(desired, self._read(desired, self.vtysh.running()), scope)

    def apply(self, desired_text: str) -> FrrApplyResult:
        """Make FRR's owned lines equal `desired_text`, verify, persist; roll back on any failure."""
        desired = _desired(desired_text)
        recorded = self._recorded()
        scope = Scope.of(desired, recorded, self.bfd_profile)
        previous = self._read(desired, self.vtysh.running())
        delta = compute_delta(desired, previous, scope)
        mine = frozenset(rendered_interfaces(desired))
        if not delta:
            self._record(mine)
            return FrrApplyResult(delta)
        session = self.vtysh.start_session()  # starts while FRR's parser checks the batch
        try:
            self._check(desired_text, delta)
            self._record(recorded | mine)  # before touching FRR: an unwritable ledger stops here
        except BaseException:
            session.cancel()
            raise
        messages = self._change(session, delta, desired, previous, scope, recorded)
        self._record(mine)
        return FrrApplyResult(delta, messages)

    def _check(self, desired_text: str, delta: Delta) -> None:
        """FRR's parser on the whole rendering and on the batch (its `no` lines are not in the rendering)."""
        rendered = desired_text.rstrip() + "\n"
        if not rendered.endswith("\nend\n"):
            rendered += "end\n"  # so that the batch after it starts at the top level
        offset = len(rendered.splitlines())
        try:
            self.vtysh.check(rendered + delta.commands())
        except LinesRefused as e:
            where = [
                f"rendered line {x.number}" if x.number <= offset else f"batch line {x.number - offset}"
                for x in e.errors
            ]
            details = "; ".join(f"{w} `{x.line}`: {x.message}" for w, x in zip(where, e.errors, strict=True))
            raise ConfigRefused(f"FRR's parser (vtysh -C) refused {details or e.detail}") from e

    def _change(
        self,
        session: Session,
        delta: Delta,
        desired: FrrConfig,
        previous: FrrConfig,
        scope: Scope,
        recorded: frozenset[str],
    ) -> tuple[LineError, ...]:
        """Apply, verify, persist; returns FRR's answers to the batch (warnings, lines it refused but not needed)."""
        step = "apply"
        try:
            log.info("FRR: applying %d changes", len(delta.changes))
            configured = self.vtysh.configure(delta.commands(), session)
            step = "verify"
            running = self._verify(desired, scope, configured.running, configured.messages)
            step = "persist"
            self.config_file.save(running)
        except RuntimeFailure as e:
            log.error("FRR %s failed (%s): rolling back", step, e)
            rollback_error = self._roll_back(previous, scope)
            if rollback_error is None:
                self._record(recorded)
            raise ApplyFailed(step, e, rollback_error) from e
        for message in configured.messages:
            log.warning("FRR said about %s", message)
        return configured.messages

    def _roll_back(self, previous: FrrConfig, scope: Scope) -> RuntimeFailure | None:
        try:
            back = compute_delta(previous, self._read(previous, self.vtysh.running()), scope)
            if back:
                configured = self.vtysh.configure(back.commands())
                self._verify(previous, scope, configured.running, configured.messages)
        except RuntimeFailure as e:
            return e
        return None

    def _verify(self, desired: FrrConfig, scope: Scope, running: Running, messages: tuple[LineError, ...]) -> str:
        left = compute_delta(desired, self._read(desired, running), scope)
        if left:
            raise NotApplied(left, messages)
        return running.text

    def _read(self, desired: FrrConfig, running: Running) -> FrrConfig:
        missing = required_daemons(desired) - running.daemons
        if missing:
            raise DaemonsDown(missing)
        return parse_config(running.text)

    def _recorded(self) -> frozenset[str]:
        return self.ledger.load() if self.ledger is not None else frozenset()

    def _record(self, names: frozenset[str]) -> None:
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


def _desired(text: str) -> FrrConfig:
    """The parsed desired configuration; one without `router ospf` is refused (it would empty the instance)."""
    desired = parse_config(text)
    if not desired.has(("router ospf",)):
        raise ConfigRefused("the desired FRR configuration has no `router ospf` stanza (a broken rendering?)")
    return desired


def _left_over(change: Change) -> str:
    where = " / ".join(change.path) or "global"
    if change.op == "remove":
        return f"{where}: `{redact(change.line)}` is still there"
    has = f" (FRR has `{redact(change.old)}`)" if change.old is not None else ""
    return f"{where}: `{redact(change.line)}` is missing{has}"
