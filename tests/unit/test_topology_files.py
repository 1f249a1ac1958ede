"""Every containerlab topology in the repository is valid for containerlab itself, and the image and
`labs/lab` give a node the same files.

Checks containerlab's JSON schema (v0.79, vendored in labs/containerlab/schema/) and the rules
containerlab enforces at deploy time that the schema cannot express (bind sources, inheritance from
defaults, kinds and groups resolved as `labs/lab` resolves them), plus our own conventions for the demo
fabrics. The topologies are labs/containerlab/*.clab.yml and the lab tests' own (tests/e2e/data/).
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

from labs.nslab import realise, topology

REPO = Path(__file__).resolve().parents[2]
CLAB = REPO / "labs" / "containerlab"
FABRICS = sorted(CLAB.glob("*.clab.yml"))  # the demo fabrics: our conventions hold for them
TOPOLOGIES = FABRICS + sorted((REPO / "tests" / "e2e" / "data").glob("*/*.clab.yml"))
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


@pytest.mark.parametrize("path", FABRICS, ids=lambda p: p.name)
def test_every_link_has_mtu(path: Path) -> None:
    links = load(path)["topology"].get("links", [])
    assert links and all("mtu" in link for link in links)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_mgmt_addresses_unique_and_in_a_documentation_subnet(path: Path) -> None:
    topo = load(path)
    subnet = ipaddress.ip_network(topo["mgmt"]["ipv4-subnet"])
    addrs = [ipaddress.ip_address(n["mgmt-ipv4"]) for n in topo["topology"]["nodes"].values() if "mgmt-ipv4" in n]
    assert len(addrs) == len(set(addrs))
    assert all(a in subnet for a in addrs)
    assert any(subnet.subnet_of(r) for r in DOC_RANGES)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", FABRICS, ids=lambda p: p.name)
def test_every_node_of_a_demo_fabric_has_a_fixed_mgmt_address(path: Path) -> None:
    nodes = load(path)["topology"]["nodes"]
    assert all("mgmt-ipv4" in n for n in nodes.values())


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_inherited_binds_have_sources_and_every_node_a_role(path: Path) -> None:
    """As `labs/lab` resolves the file (defaults < kinds < groups < node, __clabNodeName__ substituted)."""
    topo = topology.load(path)
    for node in topo.nodes.values():
        assert node.role in ROLES, f"{node.name}: label tor-agent.role is {node.role!r}"
        for bind in node.binds:
            assert bind.source.exists(), f"{node.name}: bind source {bind.source} does not exist"


def test_inheritance_is_exercised() -> None:
    """At least one topology binds intents from a group, with __clabNodeName__, as containerlab users do."""
    texts = [p.read_text() for p in TOPOLOGIES]
    assert any("groups:" in t and "__clabNodeName__" in t for t in texts)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_switch_intents_are_valid_and_use_documentation_addresses(path: Path) -> None:
    from tor_agent.config import load as load_intent

    for node in topology.load(path).nodes.values():
        source = node.intent_file()
        if source is None:
            continue
        intent = load_intent(source)
        assert intent.node.hostname == node.name
        addrs = [intent.node.loopback.ip] + [u.address.ip for u in intent.underlay.uplinks if u.address]
        assert all(any(a in r for r in DOC_RANGES) for a in addrs), f"{node.name}: {addrs}"


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


# Dockerfile COPY destinations that are tor-agent itself: labs/lab runs the tor-agent TOR_AGENT names (the
# tree's, or the installed package's) with the templates it finds, not a second copy.
TOR_AGENT_ITSELF = ("/src/tor-agent", "/usr/share/tor-agent/frr-templates")


def dockerfile_copies() -> dict[str, str]:
    """Destination -> source of every COPY in the lab image (one source per line in this Dockerfile)."""
    copies = {}
    for line in (CLAB / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            for source in sources:
                copies[dest.rstrip("/") if len(sources) == 1 else f"{dest.rstrip('/')}/{Path(source).name}"] = source
    return copies


def test_labs_lab_gives_a_node_every_file_the_image_gives_it() -> None:
    """So one topology file behaves the same under containerlab and labs/lab (e.g. a controller without binds)."""
    copies = {d: s for d, s in dockerfile_copies().items() if not d.startswith(TOR_AGENT_ITSELF)}
    assert copies
    provided = {target: source.relative_to(REPO).as_posix() for target, source in realise.IMAGE_FILES.items()}
    assert provided == copies
    run = " ".join(line for line in (CLAB / "Dockerfile").read_text().splitlines() if "/opt/os-ken" in line)
    assert "venv /opt/os-ken" in run and realise.IMAGE_OSKEN_VENV == "/opt/os-ken"
