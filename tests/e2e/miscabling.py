"""The miscabling scenario on a topology written the way operators write them (data/miscabling/dc1.clab.yml):
the switches' files rendered by `tor-agent fabric render` from the topology as planned, and the same lab with
two cables swapped, its switches still running the intents rendered from the plan.

Shared by tests/e2e/test_lab_miscabling.py and tests/e2e/record_fabric_samples.py (which records the unit
tests' LLDP and LSDB samples from it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data" / "miscabling"
TOPOLOGY = "dc1.clab.yml"
SETTINGS = "dc1.settings.yml"
# Two cables pulled and put back crossed: leaf01's first uplink lands on spine02's port for leaf03, and
# leaf03's second uplink on spine01's port for leaf01.
SWAP = (("spine01:eth1", "leaf01:eth49"), ("spine02:eth3", "leaf03:eth50"))


@dataclass(frozen=True)
class Scenario:
    """A working copy: the planned topology with its rendered configs/, and the swapped one binding them."""

    planned: Path
    swapped: Path
    configs: Path


def tor_agent() -> str:
    """The tor-agent command (TOR_AGENT, else PATH, else the one beside this python)."""
    found = os.environ.get("TOR_AGENT") or shutil.which("tor-agent") or str(Path(sys.executable).parent / "tor-agent")
    return found


def prepare(work: Path, unnumbered: bool = False) -> Scenario:
    """Copy the topology into `work`, render its switches' files into work/configs and write the swapped
    topology beside it (same lab name, same binds). `unnumbered`: every fabric link unnumbered."""
    work.mkdir(parents=True, exist_ok=True)
    planned, settings = work / TOPOLOGY, work / SETTINGS
    shutil.copy(DATA / TOPOLOGY, planned)
    doc = yaml.safe_load((DATA / SETTINGS).read_text()) or {}
    if unnumbered:
        doc.setdefault("fabric", {})["links"] = {"unnumbered": True}
    settings.write_text(yaml.safe_dump(doc, sort_keys=False))
    configs = work / "configs"
    argv = [tor_agent(), "fabric", "render", str(planned), "--settings", str(settings), "--output-dir", str(configs)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    swapped = work / TOPOLOGY.replace(".clab.yml", "-swapped.clab.yml")
    swapped.write_text(swapped_topology(planned.read_text(), *SWAP))
    return Scenario(planned, swapped, configs)


def swapped_topology(text: str, first: tuple[str, str], second: tuple[str, str]) -> str:
    """The topology `text` with the far ends of two links exchanged: (A, B) and (C, D) become (A, D), (C, B)."""
    doc: dict[str, Any] = yaml.safe_load(text)
    links = doc["topology"]["links"]
    found = {}
    for i, link in enumerate(links):
        ends = tuple(link.get("endpoints", ()))
        for which in (first, second):
            if set(ends) == set(which):
                found[which] = i
    if len(found) != 2:
        raise ValueError(f"the topology has no links {first} and {second}")
    links[found[first]]["endpoints"] = [first[0], second[1]]
    links[found[second]]["endpoints"] = [second[0], first[1]]
    head = "# generated: the planned topology with two cables swapped (tests/e2e/miscabling.py)\n"
    return head + yaml.safe_dump(doc, sort_keys=False)
