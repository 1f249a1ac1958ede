"""Fabric-wide intents: render every switch's intent from a containerlab topology, check them together.

Pure except for reading the topology, settings and intent files and writing the rendered directories
(`files`). Documented in docs/fabric.md.
"""

from tor_agent.fabric.check import check_fabric
from tor_agent.fabric.findings import Finding
from tor_agent.fabric.render import RenderedNode, Rendering, render_fabric
from tor_agent.fabric.settings import Settings, parse_settings, read_settings
from tor_agent.fabric.topology import Topology, parse_topology, read_topology

__all__ = [
    "Finding",
    "RenderedNode",
    "Rendering",
    "Settings",
    "Topology",
    "check_fabric",
    "parse_settings",
    "parse_topology",
    "read_settings",
    "read_topology",
    "render_fabric",
]
