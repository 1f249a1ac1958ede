"""The lab controller's starting networks come from the hosts' labels (labs/labkit/tenants.py): each
topology's checked-in TOPOLOGY.networks.json is what the labels make, its controller binds it, and labels that
do not make networks are refused naming the host. When a test here fails, run `make lab-configs`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labs.containerlab.controller.netapi import parse_state
from labs.labkit.tenants import SEED_TARGET, SeedError, seed, seed_text
from labs.nslab import topology

CLAB = Path(__file__).resolve().parents[2] / "labs" / "containerlab"
FABRICS = sorted(CLAB.glob("*.clab.yml"))


@pytest.mark.parametrize("path", FABRICS, ids=lambda p: p.name)
def test_checked_in_seed_is_what_the_labels_make_and_the_controller_binds_it(path: Path) -> None:
    topo = topology.load(path)
    seed_file = path.with_name(path.name.replace(".clab.yml", ".networks.json"))
    assert seed_file.read_text() == seed_text(topo), f"{seed_file.name} is stale: run `make lab-configs`"
    assert parse_state(json.loads(seed_file.read_text()))  # the controller takes it
    for node in topo.by_role("controller"):
        assert {b.target: b.source for b in node.binds}[SEED_TARGET] == seed_file


def test_the_demo_has_two_networks_on_the_same_subnet_over_two_leaves_or_more() -> None:
    doc = seed(topology.load(CLAB / "fabric.clab.yml"))
    nets = {n["name"]: n for n in doc["networks"]}
    assert {n: v["vni"] for n, v in nets.items()} == {"blue": 1001, "red": 1002}
    for net in nets.values():
        assert len({p["switch"] for p in net["ports"]}) >= 2


def topo_with(tmp_path: Path, *hosts: str) -> topology.Topology:
    nodes = "\n".join(f"    {h}" for h in hosts)
    links = "\n".join(f'    - endpoints: ["leaf1:eth{i + 3}", "{h.split(":")[0]}:eth1"]' for i, h in enumerate(hosts))
    path = tmp_path / "t.clab.yml"
    (tmp_path / "agent.yaml").write_text("")
    leaf = "leaf1: {labels: {tor-agent.role: leaf}, binds: [agent.yaml:/etc/tor-agent/agent.yaml]}"
    path.write_text(f"name: t\ntopology:\n  nodes:\n    {leaf}\n{nodes}\n  links:\n{links}\n")
    return topology.load(path)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (['h1: {labels: {tor-agent.role: host, tor-agent.tenant: blue}}'], "h1: a host with tor-agent.tenant needs"),
        (['h1: {labels: {tor-agent.role: host, tor-agent.tenant: blue, tor-agent.vni: "0"}}'],
         "h1: a host with tor-agent.tenant needs tor-agent.vni: 1..16777215 (got '0')"),
        (['h1: {labels: {tor-agent.role: host, tor-agent.tenant: a, tor-agent.vni: "5"}}',
          'h2: {labels: {tor-agent.role: host, tor-agent.tenant: a, tor-agent.vni: "6"}}'],
         "h2: tor-agent.vni 6 differs from h1's 5 for tenant a"),
        (['h1: {labels: {tor-agent.role: host, tor-agent.tenant: a, tor-agent.vni: "5"}}',
          'h2: {labels: {tor-agent.role: host, tor-agent.tenant: b, tor-agent.vni: "5"}}'],
         "tenants a and b both have tor-agent.vni 5"),
    ],
)  # fmt: skip
def test_labels_that_make_no_networks_are_refused_naming_the_host(
    tmp_path: Path, hosts: list[str], message: str
) -> None:
    with pytest.raises(SeedError, match="^" + re.escape(message)):
        seed(topo_with(tmp_path, *hosts))


def test_hosts_without_a_tenant_label_are_in_no_network(tmp_path: Path) -> None:
    topo = topo_with(tmp_path, "h1: {labels: {tor-agent.role: host}}")
    assert seed(topo) == {"version": 1, "networks": []}
