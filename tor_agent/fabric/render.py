"""`fabric render` and `fabric check` as functions: topology + settings -> rendered switches, or findings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tor_agent.config import Intent
from tor_agent.fabric.check import check_fabric
from tor_agent.fabric.findings import Finding, Findings
from tor_agent.fabric.intents import INTENT_FILE, build_intents
from tor_agent.fabric.plan import derive
from tor_agent.fabric.settings import Settings
from tor_agent.fabric.topology import Topology
from tor_agent.fabric.view import VIEW_FILE, fabric_views


@dataclass(frozen=True)
class RenderedNode:
    """What belongs in one switch's /etc/tor-agent/: texts to write and files to copy, by relative path."""

    name: str
    intent: Intent
    texts: dict[str, str]
    copies: dict[str, Path]

    @property
    def files(self) -> list[str]:
        return sorted([*self.texts, *self.copies])


@dataclass(frozen=True)
class Rendering:
    topology: Topology
    nodes: dict[str, RenderedNode]  # spines and leaves, in topology order

    @property
    def intents(self) -> dict[str, Intent]:
        return {name: node.intent for name, node in self.nodes.items()}


def render_fabric(topo: Topology, settings: Settings) -> tuple[Rendering | None, list[Finding]]:
    """Every switch's files, or None; with every problem, warning and note found (the fabric check's too)."""
    f = Findings()
    plan, found = derive(topo, settings)
    f.extend(found)
    if plan is None:
        return None, f.items
    valid = build_intents(topo, settings, plan, f)
    if f.errors:
        return None, f.items
    intents = {name: v.intent for name, v in valid.items()}
    f.extend(check_fabric(topo, intents))
    if f.errors:
        return None, f.items
    views = fabric_views(topo, intents)
    nodes = {
        name: RenderedNode(name, v.intent, {INTENT_FILE: v.text, VIEW_FILE: views[name]}, v.copies)
        for name, v in valid.items()
    }
    return Rendering(topo, nodes), f.items
