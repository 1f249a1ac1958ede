"""The engine: an intent is prepared (every stage checks it) before anything is changed, then passes apply it.

Two phases:
1. `prepare(intent)`: render FRR's configuration, have FRR's own parser check it (`vtysh -C`, no daemon
   needed), model the kernel links and OVS rows. Anything refused here raises `IntentRefused` and nothing on
   the switch has been touched: an intent is accepted only once every stage could take it.
2. `apply(prepared)`: one pass over the drivers in order (tor_agent.reconcile.stages), under the engine lock;
   `diff(prepared)` is the same pass as a dry run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, TorAgentError
from tor_agent.frr.apply import ConfigRefused
from tor_agent.model.links import desired_links
from tor_agent.model.overlay import desired_ovs
from tor_agent.model.peers import TunnelHold
from tor_agent.model.routes import KernelRoute
from tor_agent.reconcile.drivers import Drivers
from tor_agent.reconcile.lock import EngineLock
from tor_agent.reconcile.report import EngineReport
from tor_agent.reconcile.stages import Pass, Prepared, Scope
from tor_agent.reconcile.startup import StartupHold
from tor_agent.render import render_frr


class Renderer(Protocol):
    """Renders an intent's FRR configuration (render_frr, or the daemon's child renderer)."""

    def __call__(self, intent: Intent, template_dir: Path | None = None, drained: bool = False, /) -> str: ...


class IntentRefused(TorAgentError):
    """The intent loads, but a stage refuses it (FRR's parser, the templates): nothing was changed."""

    exit_code = EXIT_INVALID

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: refused: {reason}; nothing was changed")


@dataclass
class Engine:
    """Prepares intents and runs passes over `drivers`."""

    drivers: Drivers
    lock: EngineLock = field(default_factory=EngineLock)
    hold: TunnelHold | None = None  # the daemon's: tunnels outlive a brief loss of their peer's route
    template_dir: Path | None = None
    render: Renderer = render_frr  # the daemon's renders in a child (render.isolated)

    def prepare(self, intent: Intent) -> Prepared:
        """Check `intent` through every stage without changing anything. Raises IntentRefused (the intent's
        fault), or a RuntimeFailure when a check itself cannot run (no templates, no vtysh)."""
        try:
            text = self.render(intent, self.template_dir)
            self.drivers.frr.check(text)
        except ConfigRefused as e:
            raise IntentRefused(intent.source, str(e)) from e
        drained = self.render(intent, self.template_dir, True)  # one more router-ospf line, golden-tested
        links = desired_links(intent)
        desired_ovs(intent)  # the OVS model of the intent builds (its peers come later, from OSPF)
        return Prepared(intent, text, links, drained)

    def apply(
        self,
        prepared: Prepared,
        scope: Scope = "full",
        drained: bool = False,
        startup: StartupHold | None = None,
        routes: Sequence[KernelRoute] | None = None,
    ) -> EngineReport:
        """One pass (`full`; `overlay`: peers, tunnels and OVS routes only; `routes`: peers and OVS routes, over
        `routes`, the kernel's table as the caller has it), under the lock; `drained`: FRR advertises every transit
        link at the maximum metric; `startup`: the daemon's start-up protection."""
        with self.lock.held():
            return Pass(self.drivers, prepared, scope, False, self.hold, drained, startup, routes).run()

    def diff(self, prepared: Prepared, drained: bool = False) -> EngineReport:
        """What a full pass would change now, per stage. Changes nothing."""
        return Pass(self.drivers, prepared, "full", dry_run=True, drained=drained).run()
