"""The engine's links stage for the driver tests: read, plan, apply with the real links driver, in whatever
network namespace the caller runs it (tests/net's Netns.run forks into one). Module-level functions, so that
they can be handed to a child process."""

from __future__ import annotations

from pathlib import Path

from tor_agent.config import Intent
from tor_agent.model.links import desired_links
from tor_agent.net import LinkResult, LinksDriver, LinksPlan


def planned(owned: Path, intent: Intent) -> LinksPlan:
    """What an apply of `intent` would change now (`owned`: the address record)."""
    driver = LinksDriver(owned_file=owned)
    return driver.plan(desired_links(intent), driver.read())


def converge(owned: Path, intent: Intent) -> tuple[LinksPlan, LinkResult]:
    """Plan and apply `intent`."""
    driver = LinksDriver(owned_file=owned)
    plan = driver.plan(desired_links(intent), driver.read())
    return plan, driver.apply(plan)


def converge_links(owned: Path, intent: Intent) -> LinkResult:
    """Plan and apply `intent`; what the apply did."""
    return converge(owned, intent)[1]
