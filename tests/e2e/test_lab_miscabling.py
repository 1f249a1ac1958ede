"""Miscabling, end to end: a pod written the way operators write containerlab topologies
(data/miscabling/dc1.clab.yml: 2 spines, 3 leaves on eth49/eth50, servers, a controller), its switches'
files rendered by `tor-agent fabric render`, brought up with `labs/lab up`. As planned, every switch's
`verify` confirms its cabling by LLDP and OSPF and `verify --fabric` finds the fabric as planned. Then two
cables are swapped in the running lab (`labs/lab update` to the topology with spine01:eth1 -- leaf01:eth49
and spine02:eth3 -- leaf03:eth50 crossed; the switches keep the intents rendered from the plan):
`verify` fails on each affected leaf naming the expected and the found neighbour, and `verify --fabric` on
a switch elsewhere (leaf02) reports exactly those two links.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from miscabling import SWAP, Scenario, prepare

from labs.labkit import fabric
from labs.labkit.lab import CONVERGE_BUDGET_S, Lab, host_links, lab_lock
from labs.labkit.nodes import tor_agent
from labs.nslab import realise, topology
from tor_agent.wait import wait_until

pytestmark = pytest.mark.lab

LLDP_BUDGET_S = 20.0  # lldpd's first frames plus the lab's 2 s transmit interval
SWAPPED_LINKS = [f"link {SWAP[0][0]} -- {SWAP[0][1]}", f"link {SWAP[1][0]} -- {SWAP[1][1]}"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Scenario]]:
    """dc1 rendered into a temporary directory and brought up; taken down after."""
    scenario = prepare(tmp_path_factory.mktemp("miscabling"))
    topo = topology.load(scenario.planned)
    with lab_lock(topo.name):
        before = host_links()
        realise.up(topo)
        try:
            fabric.wait_healthy(topo, timeout=CONVERGE_BUDGET_S)
            yield Lab(topo, before), scenario
        finally:
            realise.down(topo)
    assert host_links() == before


def verify(lab: Lab, node: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = tor_agent(lab.topo, node, "verify", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def cabling(lab: Lab, node: str) -> list[tuple[str, bool]]:
    """Each uplink with an expected neighbour and whether LLDP confirms it."""
    _, doc = verify(lab, node)
    return [(u["name"], u["lldp"] is not None and u["ok"]) for u in doc["cabling"]["uplinks"]]


def test_as_planned_every_switch_confirms_its_cabling_and_the_fabric(lab: tuple[Lab, Scenario]) -> None:
    lab_, _ = lab
    for node in fabric.switches(lab_.topo):

        def confirmed_by_lldp(node: str = node) -> list[tuple[str, bool]] | None:
            found = cabling(lab_, node)
            return found if all(ok for _, ok in found) else None

        confirmed = wait_until(confirmed_by_lldp, LLDP_BUDGET_S, 0.5, f"{node}: LLDP to confirm every uplink")
        assert len(confirmed) == (3 if node.startswith("spine") else 2)
        code, doc = verify(lab_, node)
        assert (code, doc["degraded"]) == (0, [])
        assert doc["cabling"]["lldp_error"] is None
    text = tor_agent(lab_.topo, "spine02", "verify", "--fabric")
    assert text.returncode == 0, text.stdout + text.stderr
    assert (
        text.stdout == "spine02: fabric dc1 as planned: 5 routers, 6/6 links, ECMP as planned between 3 leaf pair(s)\n"
    )


def test_two_swapped_cables_are_named_on_the_leaves_and_by_the_fabric_check(lab: tuple[Lab, Scenario]) -> None:
    lab_, scenario = lab
    update = realise.update(topology.load(scenario.swapped))
    assert (update.links_added, update.links_removed) == (2, 2), update

    def miscabled(node: str) -> list[dict[str, str]] | None:
        code, doc = verify(lab_, node)
        found = [d for d in doc["degraded"] if d["kind"] == "cabling"]
        return found if code == 1 and found else None

    leaf01 = wait_until(lambda: miscabled("leaf01"), LLDP_BUDGET_S, 0.5, "leaf01: verify to name the swapped cable")
    assert leaf01 == [
        {
            "kind": "cabling",
            "subject": "underlay.uplinks[0] eth49 (br-eth49)",
            "message": "cabled to spine02:eth3 (LLDP), expected spine01:eth1 (198.18.255.1)",
        }
    ]
    leaf03 = wait_until(lambda: miscabled("leaf03"), LLDP_BUDGET_S, 0.5, "leaf03: verify to name the swapped cable")
    assert leaf03 == [
        {
            "kind": "cabling",
            "subject": "underlay.uplinks[1] eth50 (br-eth50)",
            "message": "cabled to spine01:eth1 (LLDP), expected spine02:eth3 (198.18.255.2)",
        }
    ]
    assert verify(lab_, "leaf02")[1]["cabling"]["uplinks"][0]["ok"] is True  # leaf02's cables are where planned

    def fabric_findings() -> list[dict[str, str]] | None:
        code, doc = verify(lab_, "leaf02", "--fabric")
        links = [f for f in doc["findings"] if f["kind"] in ("missing", "wrong", "extra")]
        return doc["findings"] if code == 1 and len(links) == 2 else None

    findings = wait_until(fabric_findings, CONVERGE_BUDGET_S, 0.5, "leaf02: verify --fabric to report the two links")
    assert [f["subject"] for f in findings if f["kind"] == "missing"] == SWAPPED_LINKS
    assert {f["kind"] for f in findings} == {"missing", "ecmp"}
    named_by_leaves = [
        f"{leaf}:{u['name']}"
        for leaf in ("leaf01", "leaf03")
        for u in verify(lab_, leaf)[1]["cabling"]["uplinks"]
        if not u["ok"]
    ]
    assert named_by_leaves == [link.split(" -- ")[1] for link in SWAPPED_LINKS]  # the same links, from both sides
    text = tor_agent(lab_.topo, "leaf02", "verify", "--fabric")
    assert text.returncode == 1 and text.stdout.splitlines()[1:3] == [
        f"  {SWAPPED_LINKS[0]}: no adjacency, though both ends advertise 198.18.1.0/31: the ports are up and "
        "addressed but do not reach each other (cabled to other ports?)",
        f"  {SWAPPED_LINKS[1]}: no adjacency, though both ends advertise 198.18.1.10/31: the ports are up and "
        "addressed but do not reach each other (cabled to other ports?)",
    ]
