"""Apply a rendered FRR configuration safely: live delta, parser check, one batch, verify, persist.

The delta is always computed against FRR's live running configuration, so hand edits are seen and
repaired. On any failure once FRR has been touched, the owned lines are put back as they were in
the running configuration read at the start, and that restore is verified too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tor_agent.errors import RuntimeFailure
from tor_agent.frr.config_file import IntegratedConfig, NotWritable
from tor_agent.frr.config_tree import FrrConfig, parse_config, redact
from tor_agent.frr.delta import BFD_PROFILE, Change, Delta, Scope, compute_delta, rendered_interfaces
from tor_agent.frr.ledger import InterfaceLedger
from tor_agent.frr.vtysh import LineError, LinesRefused, Running, Session, Vtysh, VtyshError

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

    retryable = True

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
class FrrState:
    """FRR as read: its running configuration (with the daemons that answered) and the interfaces whose OSPF
    configuration tor-agent made before (the ledger)."""

    running: Running
    recorded: frozenset[str]

    @property
    def max_metric(self) -> bool:
        """Whether OSPF advertises the maximum metric now (`max-metric router-lsa administrative`)."""
        return MAX_METRIC in parse_config(self.running.text).lines(("router ospf",))


MAX_METRIC = "max-metric router-lsa administrative"


@dataclass(frozen=True)
class FrrPlan:
    """The owned lines to change, against the running configuration they were computed from."""

    text: str  # the rendering, as handed to `plan`
    desired: FrrConfig
    previous: FrrConfig  # the running configuration read: what a rollback restores
    scope: Scope
    delta: Delta
    recorded: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.delta)

    def changes(self) -> tuple[str, ...]:
        """`interface eth1: - ip ospf cost 99`-style lines, keys redacted."""
        return delta_lines(self.delta)

    def findings(self) -> tuple[RuntimeFailure, ...]:
        """Nothing is found at plan time that a pass could work around (refusals raise)."""
        return ()

    def notes(self) -> tuple[str, ...]:
        """What the operator should know: lines tor-agent does not own, uplinks it only reports."""
        return self.delta.notes


@dataclass(frozen=True)
class FrrApplyResult:
    """What an apply did: the delta it applied (empty when FRR already matched), and what FRR said."""

    delta: Delta
    messages: tuple[LineError, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether FRR was changed."""
        return bool(self.delta)

    def changes(self) -> tuple[str, ...]:
        """One line per change made."""
        return delta_lines(self.delta)

    @property
    def errors(self) -> tuple[RuntimeFailure, ...]:
        """A batch is all or nothing: a failure raises (after the rollback), so an applied result has none."""
        return ()


@dataclass(frozen=True)
class FrrDriver:
    """Makes FRR's owned lines match a rendered configuration: `read()`, a pure `plan(text, state)`, `apply(plan)`.

    `ledger` None means uplinks that left the intent are only reported; `config_file` is where the
    verified running configuration is persisted.
    """

    vtysh: Vtysh
    ledger: InterfaceLedger | None = None
    bfd_profile: str = BFD_PROFILE
    config_file: IntegratedConfig = field(default_factory=IntegratedConfig)
    _unsaved: set[Path] = field(default_factory=set, compare=False, repr=False)  # warned about once

    def read(self) -> FrrState:
        """The running configuration and the ledger (one vtysh call)."""
        return FrrState(self.vtysh.running(), self._recorded())

    def plan(self, desired_text: str, state: FrrState) -> FrrPlan:
        """The delta that makes the owned lines of `state` equal `desired_text`. Pure.

        Raises ConfigRefused (a rendering without `router ospf`) or DaemonsDown (a daemon it needs did not answer).
        """
        desired = _desired(desired_text)
        scope = Scope.of(desired, state.recorded, self.bfd_profile)
        previous = _parsed(desired, state.running)
        return FrrPlan(desired_text, desired, previous, scope, compute_delta(desired, previous, scope), state.recorded)

    def check(self, desired_text: str) -> None:
        """FRR's own parser (vtysh -C, no daemon needed) on a rendering; raises ConfigRefused. Changes nothing."""
        _desired(desired_text)
        self._check(desired_text, Delta(()))

    def diff(self, desired_text: str) -> Delta:
        """What `apply` would change now. Changes nothing."""
        return self.plan(desired_text, self.read()).delta

    def apply(self, plan: FrrPlan) -> FrrApplyResult:
        """Check the rendering and the batch with FRR's parser, send the batch, verify, persist; on any failure
        once FRR was touched, put the owned lines back as they were in `plan.previous` (verified too)."""
        mine = frozenset(rendered_interfaces(plan.desired))
        if not plan.delta:
            self._record(mine)
            return FrrApplyResult(plan.delta)
        session = self.vtysh.start_session()  # starts while FRR's parser checks the batch
        try:
            self._check(plan.text, plan.delta)
            self._record(plan.recorded | mine)  # before touching FRR: an unwritable ledger stops here
        except BaseException:
            session.cancel()
            raise
        messages = self._change(session, plan)
        self._record(mine)
        return FrrApplyResult(plan.delta, messages)

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

    def _change(self, session: Session, plan: FrrPlan) -> tuple[LineError, ...]:
        """Apply, verify, persist; returns FRR's answers to the batch (warnings, lines it refused but not needed)."""
        step = "apply"
        try:
            log.info("FRR: applying %d changes", len(plan.delta.changes))
            configured = self.vtysh.configure(plan.delta.commands(), session)
            step = "verify"
            running = self._verify(plan.desired, plan.scope, configured.running, configured.messages)
            step = "persist"
            self._persist(running)
        except RuntimeFailure as e:
            log.error("FRR %s failed (%s): rolling back", step, e)
            rollback_error = self._roll_back(plan.previous, plan.scope)
            if rollback_error is None:
                self._record(plan.recorded)
            raise ApplyFailed(step, e, rollback_error) from e
        for message in configured.messages:
            log.warning("FRR said about %s", message)
        return configured.messages

    def _persist(self, running: str) -> None:
        """Save the verified running configuration: directly, else through FRR's own save (watchfrr writes the
        file when tor-agent may not); a file nobody may write is warned about, and the apply stands."""
        try:
            self.config_file.save(running)
        except NotWritable as e:
            try:
                self.vtysh.write_memory()
            except VtyshError as again:
                if e.path not in self._unsaved:  # the file stays read-only: one warning, not one per change
                    self._unsaved.add(e.path)
                    log.warning(
                        "%s; FRR's own save failed too (%s): FRR's running configuration is not saved to it, "
                        "FRR starts from the file as it is",
                        e,
                        again,
                    )
                return
        self._unsaved.clear()

    def _roll_back(self, previous: FrrConfig, scope: Scope) -> RuntimeFailure | None:
        try:
            back = compute_delta(previous, _parsed(previous, self.vtysh.running()), scope)
            if back:
                configured = self.vtysh.configure(back.commands())
                self._verify(previous, scope, configured.running, configured.messages)
        except RuntimeFailure as e:
            return e
        return None

    def _verify(self, desired: FrrConfig, scope: Scope, running: Running, messages: tuple[LineError, ...]) -> str:
        left = compute_delta(desired, _parsed(desired, running), scope)
        if left:
            raise NotApplied(left, messages)
        return running.text

    def _recorded(self) -> frozenset[str]:
        return self.ledger.load() if self.ledger is not None else frozenset()

    def _record(self, names: frozenset[str]) -> None:
        if self.ledger is not None:
            self.ledger.save(names)


def _parsed(desired: FrrConfig, running: Running) -> FrrConfig:
    """The running configuration parsed; DaemonsDown when a daemon `desired` needs did not answer."""
    missing = required_daemons(desired) - running.daemons
    if missing:
        raise DaemonsDown(missing)
    return parse_config(running.text)


def delta_lines(delta: Delta) -> tuple[str, ...]:
    """`interface eth1: - ip ospf cost 99`-style lines, keys redacted."""
    lines = []
    for change in delta.changes:
        where = " / ".join(change.path) or "(top)"
        old = f"{redact(change.old)} -> " if change.old is not None else ""
        sign = "-" if change.op == "remove" else "+"
        lines.append(f"{where}: {sign} {old}{redact(change.line)}")
    return tuple(lines)


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
