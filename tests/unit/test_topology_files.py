"""Every containerlab topology in labs/containerlab/ is valid for containerlab itself.

Checks containerlab's JSON schema (v0.79, vendored in labs/containerlab/schema/) and the rules
containerlab enforces at deploy time that the schema cannot express, plus our own conventions.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLAB = REPO / "labs" / "containerlab"
TOPOLOGIES = sorted(CLAB.glob("*.clab.yml"))
ROLES = {"spine", "leaf", "host", "controller"}
DOC_RANGES = [ipaddress.ip_network(n) for n in ("198.18.0.0/15", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def endpoints(topo: dict[str, Any]) -> list[tuple[str, str]]:
    """(node, interface) of every link endpoint, in both the short and the extended link form."""
    found = []
    for link in topo["topology"].get("links", []):
        for ep in link["endpoints"]:
            if isinstance(ep, str):
                node, _, iface = ep.partition(":")
            else:
                node, iface = ep["node"], ep["interface"]
            found.append((node, iface))
    return found


def test_topologies_exist() -> None:
    assert CLAB / "fabric.clab.yml" in TOPOLOGIES


def clab_schema() -> dict[str, Any]:
    """containerlab's schema, its ECMAScript `[\\p{N}\\p{L}]` (letters and digits) spelt for Python's re."""
    text = (CLAB / "schema" / "clab.schema.json").read_text()
    schema = json.loads(text.replace(r"[\\p{N}\\p{L}]", r"[^\\W_]"))
    assert isinstance(schema, dict)
    return schema


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_schema(path: Path) -> None:
    jsonschema.Draft7Validator(clab_schema()).validate(load(path))


def test_schema_rejects_a_bad_topology() -> None:
    bad = {"name": "x", "topology": {"nodes": {"a": {"mgmt-ipv4": "not-an-ip"}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(clab_schema()).validate(bad)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_endpoints_name_existing_nodes_once(path: Path) -> None:
    topo = load(path)
    nodes = set(topo["topology"]["nodes"])
    eps = endpoints(topo)
    assert [e for e in eps if e[0] not in nodes] == []
    assert [e for e, n in Counter(eps).items() if n > 1] == []
    assert [e for e in eps if e[1] == "eth0"] == []  # eth0 is the management interface


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_every_link_has_mtu(path: Path) -> None:
    links = load(path)["topology"].get("links", [])
    assert links and all("mtu" in link for link in links)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_mgmt_addresses_unique_and_in_subnet(path: Path) -> None:
    topo = load(path)
    subnet = ipaddress.ip_network(topo["mgmt"]["ipv4-subnet"])
    addrs = [ipaddress.ip_address(n["mgmt-ipv4"]) for n in topo["topology"]["nodes"].values() if "mgmt-ipv4" in n]
    assert len(addrs) == len(set(addrs)) == len(topo["topology"]["nodes"])
    assert all(a in subnet for a in addrs)
    assert any(subnet.subnet_of(r) for r in DOC_RANGES)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_bind_sources_exist(path: Path) -> None:
    for name, node in load(path)["topology"]["nodes"].items():
        for bind in node.get("binds", []):
            source = bind.split(":")[0]
            assert (path.parent / source).exists(), f"{name}: bind source {source} does not exist"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_every_node_has_a_role(path: Path) -> None:
    topo = load(path)
    defaults = topo["topology"].get("defaults", {}).get("labels", {})
    for name, node in topo["topology"]["nodes"].items():
        role = {**defaults, **node.get("labels", {})}.get("tor-agent.role")
        assert role in ROLES, f"{name}: label tor-agent.role is {role!r}"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_switch_intents_are_valid_and_use_documentation_addresses(path: Path) -> None:
    from tor_agent.config import load as load_intent

    for name, node in load(path)["topology"]["nodes"].items():
        for bind in node.get("binds", []):
            source, target = bind.split(":")[:2]
            if target != "/etc/tor-agent/agent.yaml":
                continue
            intent = load_intent(path.parent / source)
            assert intent.node.hostname == name
            addrs = [intent.node.loopback.ip] + [u.address.ip for u in intent.underlay.uplinks if u.address]
            assert all(any(a in r for r in DOC_RANGES) for a in addrs), f"{name}: {addrs}"


def test_demo_fabric_shape() -> None:
    topo = load(CLAB / "fabric.clab.yml")
    roles = Counter(n["labels"]["tor-agent.role"] for n in topo["topology"]["nodes"].values())
    assert roles["spine"] == 2 and roles["leaf"] == 3 and roles["host"] >= 4 and roles["controller"] == 1


def test_dockerfile_copies_files_that_exist() -> None:
    """The lab image cannot be built here (no Docker engine); at least every COPY source must exist."""
    dockerfile = (CLAB / "Dockerfile").read_text().splitlines()
    copies = [line.split()[1:-1] for line in dockerfile if line.startswith("COPY ")]
    assert copies
    missing = [src for srcs in copies for src in srcs if not (REPO / src).exists()]
    assert missing == []
    assert any("node-start" in line for line in dockerfile if line.startswith("ENTRYPOINT"))
