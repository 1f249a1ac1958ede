"""Tenant networks in a lab: the lab controller's seed from a topology's host labels, and its network API.

A host's labels say which network its leaf port starts in: `tor-agent.tenant: blue` and `tor-agent.vni:
"1001"` (every host of a network gives the same VNI). `seed(topo)` turns them into the controller's seed
file (the format of labs/containerlab/controller/netapi.py): each such host's leaf port in its network. The
controller node binds it as /etc/tor-agent/networks.json; `make lab-configs` writes it next to each topology:

    python3 -m labs.labkit.tenants seed labs/containerlab/fabric.clab.yml labs/containerlab/fabric.networks.json

`NetworkApi` calls the controller's API (http://MGMT:8080) from inside the controller node, as an operator's
curl on the management network would: for tests, benchmarks and `make demo`, which shows the running lab's
networks and a ping inside each (`python3 -m labs.labkit.tenants show TOPOLOGY`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from labs.labkit.fabric import tenant_address
from labs.labkit.nodes import NodeCommandError, node_run
from labs.nslab import topology
from labs.nslab.topology import Topology
from tor_agent.wait import WaitTimeout, wait_until

TENANT_LABEL, VNI_LABEL = "tor-agent.tenant", "tor-agent.vni"
API_PORT = 8080
SEED_TARGET = "/etc/tor-agent/networks.json"  # where a controller node's seed is bound
STATE_FILE = "/var/lib/lab-controller/networks.json"  # node-start's --state for the controller
EMPTY = {"version": 1, "networks": []}


class SeedError(ValueError):
    """A topology whose host labels do not make networks; names the host and the label."""


def seed(topo: Topology) -> dict[str, Any]:
    """The networks the hosts' labels put their leaf ports in, as a seed document."""
    vnis: dict[str, tuple[int, str]] = {}
    ports: dict[str, list[dict[str, str]]] = {}
    leaves = {n.name for n in topo.by_role("leaf")}
    for node in topo.by_role("host"):
        tenant = node.labels.get(TENANT_LABEL)
        if not tenant:
            continue
        vni = _vni(node.name, node.labels.get(VNI_LABEL))
        first = vnis.setdefault(tenant, (vni, node.name))
        if first[0] != vni:
            raise SeedError(f"{node.name}: {VNI_LABEL} {vni} differs from {first[1]}'s {first[0]} for tenant {tenant}")
        ends = [remote for _, remote, _ in topo.links_of(node.name) if remote.node in leaves]
        ports.setdefault(tenant, []).extend({"switch": e.node, "port": e.iface} for e in ends)
    taken: dict[int, str] = {}
    for tenant, (vni, _) in vnis.items():
        if taken.setdefault(vni, tenant) != tenant:
            raise SeedError(f"tenants {taken[vni]} and {tenant} both have {VNI_LABEL} {vni}")
    networks = [
        {"name": t, "vni": vnis[t][0], "ports": sorted(ports[t], key=lambda p: (p["switch"], p["port"]))}
        for t in sorted(vnis)
    ]
    return {"version": 1, "networks": networks}


def _vni(host: str, label: str | None) -> int:
    if label is None or not label.isdigit() or not 1 <= int(label) < 2**24:
        raise SeedError(f"{host}: a host with {TENANT_LABEL} needs {VNI_LABEL}: 1..16777215 (got {label!r})")
    return int(label)


def seed_text(topo: Topology) -> str:
    """The seed file's text (what is checked in next to the topology): a network per line, then its ports."""
    doc = seed(topo)
    lines = []
    for net in doc["networks"]:
        head = json.dumps({k: v for k, v in net.items() if k != "ports"})[:-1]
        ports = ",\n".join(f"    {json.dumps(p)}" for p in net["ports"])
        lines.append(f'  {head}, "ports": [\n{ports}\n  ]}}' if ports else f'  {head}, "ports": []}}')
    body = ",\n".join(lines)
    return f'{{"version": {doc["version"]}, "networks": [\n{body}\n]}}\n' if lines else json.dumps(doc) + "\n"


def write_seed(topology_file: Path, output: Path) -> None:
    """Write `output` from the topology, which binds it (so an empty one is made first when it is missing)."""
    if not output.exists():
        output.write_text(json.dumps(EMPTY) + "\n")
    output.write_text(seed_text(topology.load(topology_file)))


# --- the controller's API --------------------------------------------------------------------------------

CLIENT = """
import json, sys, time, urllib.error, urllib.request
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
sent = time.time()
try:
    with urllib.request.urlopen(request, timeout=10) as reply:
        status, text = reply.status, reply.read().decode()
except urllib.error.HTTPError as e:
    status, text = e.code, e.read().decode()
print(json.dumps({"status": status, "body": json.loads(text or "null"), "sent": sent, "at": time.time()}))
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    at: float = 0.0  # wall clock when the reply was read
    sent: float = 0.0  # wall clock when the request was sent


@dataclass(frozen=True)
class NetworkApi:
    """The lab controller's network API, called from inside the controller node."""

    topo: Topology
    node: str = "controller"

    @property
    def url(self) -> str:
        return f"http://{self.topo.nodes[self.node].mgmt_ipv4}:{API_PORT}"

    def call(self, method: str, path: str, body: Any = None, raw: str | None = None) -> Answer:
        """One request; `raw` sends a body as it is (malformed JSON, say)."""
        args = [method, f"{self.url}{path}"] + ([raw if raw is not None else json.dumps(body)] if body or raw else [])
        done = node_run(self.topo, self.node, "python3", "-c", CLIENT, *args, timeout=30)
        doc = json.loads(done.stdout)
        return Answer(int(doc["status"]), doc["body"], float(doc["at"]), float(doc["sent"]))

    def networks(self) -> dict[str, Any]:
        """Every network by name (ports, learned MACs)."""
        answer = self.call("GET", "/networks")
        assert answer.status == 200, answer
        return {n["name"]: n for n in answer.body["networks"]}

    def create(self, name: str, vni: int) -> Answer:
        return self.call("POST", "/networks", {"name": name, "vni": vni})

    def attach(self, name: str, switch: str, port: str) -> Answer:
        return self.call("PUT", f"/networks/{name}/ports", {"switch": switch, "port": port})

    def detach(self, name: str, switch: str, port: str) -> Answer:
        return self.call("DELETE", f"/networks/{name}/ports/{switch}/{port}")

    def delete(self, name: str) -> Answer:
        return self.call("DELETE", f"/networks/{name}")


# --- the demo ---------------------------------------------------------------------------------------------


def show(topo: Topology, timeout: float = 30.0) -> list[str]:
    """The running lab's networks (from the controller's API) and, in each, a ping from its first addressed
    host to the next one's address, once the tunnels are up (waited for up to `timeout`)."""
    api = NetworkApi(topo)
    wait_until(lambda: _answers(api), timeout, 0.2, "the controller's API")
    lines = [f"tenant networks (GET {api.url}/networks):"]
    hosts = _addressed_hosts(topo)
    for name, net in sorted(api.networks().items()):
        ports = ", ".join(f"{p['switch']} {p['port']}" for p in net["ports"]) or "none"
        lines.append(f"  {name:<8} VNI {net['vni']:<8} ports: {ports}")
    for name, members in sorted(hosts.items()):
        if len(members) < 2:
            continue
        (src, _), (dst, address) = members[0], members[1]
        try:
            wait_until(partial(_pings, topo, src, address), timeout, 0.2, f"{src} to reach {address}")
            result = "replies"
        except WaitTimeout:
            result = "NO reply"
        lines.append(f"  {name}: {src} -> {dst} ({address}): {result}")
    return lines


def _answers(api: NetworkApi) -> bool:
    try:
        return api.call("GET", "/networks").status == 200
    except (NodeCommandError, ValueError):
        return False


def _addressed_hosts(topo: Topology) -> dict[str, list[tuple[str, str]]]:
    """Per tenant label: (host, tenant address) of each host that has one, in file order."""
    found: dict[str, list[tuple[str, str]]] = {}
    for node in topo.by_role("host"):
        tenant = node.labels.get(TENANT_LABEL)
        try:
            address = tenant_address(topo, node.name)
        except RuntimeError:
            continue
        if tenant:
            found.setdefault(tenant, []).append((node.name, address))
    return found


def _pings(topo: Topology, host: str, address: str) -> bool:
    return node_run(topo, host, "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0


def main(argv: list[str]) -> int:
    """`seed TOPOLOGY OUTPUT`: write the controller's seed for TOPOLOGY; `show TOPOLOGY`: the running lab's
    networks and a ping in each."""
    try:
        if len(argv) == 3 and argv[0] == "seed":
            write_seed(Path(argv[1]), Path(argv[2]))
        elif len(argv) == 2 and argv[0] == "show":
            print("\n".join(show(topology.load(Path(argv[1])))))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (OSError, SeedError, topology.TopologyError, WaitTimeout, NodeCommandError) as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
