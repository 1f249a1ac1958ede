"""What a running lab looks like: OSPF adjacencies, ECMP width per leaf pair, BFD, OVS and the controller.

Expectations come from the topology (which switches are linked) and the switches' intent files (each
leaf's loopback); observations come from inside the nodes (vtysh, ip, ovs-appctl, /proc/net/tcp).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from labs.nslab import procs, state
from labs.nslab.state import State
from labs.nslab.topology import SWITCH_ROLES, Topology

OPENFLOW_PORT = 6653


@dataclass
class NodeStatus:
    name: str
    role: str
    netns: str
    mgmt: str
    running: bool = False
    ospf_full: int | None = None  # neighbours in state Full
    ospf_expected: int | None = None
    bfd_up: int | None = None
    ecmp: dict[str, list[int]] = field(default_factory=dict)  # remote leaf -> [width, expected]
    ovs: bool | None = None  # ovs-vswitchd answers
    controller: bool | None = None  # listening on the OpenFlow port
    addresses: list[str] = field(default_factory=list)  # hosts: IPv4 addresses on data interfaces
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Running and every check this role has passes."""
        return self.running and not self.problems


@dataclass
class LabStatus:
    lab: str
    topology: str
    up: bool
    nodes: list[NodeStatus]

    @property
    def healthy(self) -> bool:
        """Up, and every node ok."""
        return self.up and all(n.ok for n in self.nodes)

    def to_json(self) -> str:
        """The status as JSON (for scripts and tests)."""
        data = asdict(self)
        data["healthy"] = self.healthy
        for node, ns in zip(data["nodes"], self.nodes, strict=True):
            node["ok"] = ns.ok
        return json.dumps(data, indent=1)


def loopback(intent: Path) -> ipaddress.IPv4Interface:
    """A switch's loopback /32, from its intent file."""
    data = yaml.safe_load(intent.read_text())
    return ipaddress.IPv4Interface(data["node"]["loopback"])


def expected_adjacencies(topo: Topology, node: str) -> int:
    """Links from `node` to other switches: each must carry a Full OSPF adjacency."""
    return sum(1 for _, remote, _ in topo.links_of(node) if topo.nodes[remote.node].role in SWITCH_ROLES)


def switch_neighbours(topo: Topology, node: str) -> set[str]:
    """The switches `node` has a link to."""
    return {r.node for _, r, _ in topo.links_of(node) if topo.nodes[r.node].role in SWITCH_ROLES}


def expected_ecmp(topo: Topology) -> dict[str, dict[str, int]]:
    """For each leaf, the ECMP width to every other leaf's loopback: the spines both are linked to."""
    leaves = [n.name for n in topo.by_role("leaf")]
    spines = {n.name for n in topo.by_role("spine")}
    up = {leaf: switch_neighbours(topo, leaf) & spines for leaf in leaves}
    return {a: {b: len(up[a] & up[b]) for b in leaves if b != a} for a in leaves}


def leaf_loopbacks(topo: Topology) -> dict[str, str]:
    """Every leaf's loopback as a route destination (`198.18.0.11/32`)."""
    found = {}
    for leaf in topo.by_role("leaf"):
        intent = leaf.intent_file()
        if intent is not None:
            found[leaf.name] = str(loopback(intent).network)
    return found


def bfd_wanted(topo: Topology, node: str) -> bool:
    """True when the switch's intent enables BFD for OSPF."""
    intent = topo.nodes[node].intent_file()
    if intent is None:
        return False
    ospf = yaml.safe_load(intent.read_text())["underlay"]["ospf"] or {}
    return "bfd" in ospf and bool((ospf["bfd"] or {}).get("enabled", True))


def data_addresses(netns: str) -> list[str]:
    """IPv4 addresses on the node's data interfaces (not lo, not the management eth0)."""
    links = json.loads(procs.run(["ip", "-n", netns, "-j", "-4", "address", "show"], timeout=5) or "[]")
    return [
        f"{a['local']}/{a['prefixlen']} {link['ifname']}"
        for link in links
        if link["ifname"] not in ("lo", "eth0")
        for a in link.get("addr_info", [])
    ]


def ospf_route_widths(netns: str) -> dict[str, int]:
    """Destination -> number of nexthops of every OSPF route in the node's kernel FIB."""
    routes = json.loads(procs.run(["ip", "-n", netns, "-j", "route", "show", "proto", "ospf"], timeout=5) or "[]")
    widths = {}
    for r in routes:
        dst = r["dst"] if "/" in r["dst"] else f"{r['dst']}/32"
        widths[dst] = len(r.get("nexthops", [])) or 1
    return widths


def vtysh_json(holder: int, command: str) -> object:
    """`vtysh -c COMMAND` inside a node, parsed."""
    return json.loads(procs.run([*procs.enter(holder), "vtysh", "-c", command], timeout=10) or "{}")


def ospf_full(holder: int) -> int:
    """OSPF neighbours in state Full."""
    data = vtysh_json(holder, "show ip ospf neighbor json")
    neighbours = data.get("neighbors", {}) if isinstance(data, dict) else {}
    return sum(1 for entries in neighbours.values() for e in entries if str(e.get("nbrState", "")).startswith("Full"))


def bfd_up(holder: int) -> int:
    """BFD sessions up."""
    data = vtysh_json(holder, "show bfd peers json")
    return sum(1 for p in data if isinstance(p, dict) and p.get("status") == "up") if isinstance(data, list) else 0


def ovs_up(holder: int) -> bool:
    """ovs-vswitchd answers on its control socket."""
    procs.run([*procs.enter(holder), "ovs-appctl", "-t", "ovs-vswitchd", "version"], timeout=5)
    return True


def listening(holder: int, port: int) -> bool:
    """A TCP socket listens on `port` in the holder's network namespace."""
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{holder}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def ecmp_problems(topo: Topology, leaf: str, widths: dict[str, int], ns: NodeStatus) -> None:
    """Fill `ns.ecmp` for `leaf` and note every remote leaf without full ECMP."""
    loopbacks = leaf_loopbacks(topo)
    for remote, want in expected_ecmp(topo)[leaf].items():
        have = widths.get(loopbacks.get(remote, ""), 0)
        ns.ecmp[remote] = [have, want]
        if have != want:
            ns.problems.append(f"ECMP to {remote} {have}/{want}")


def check_node(topo: Topology, st: State, name: str, deep: bool = True) -> NodeStatus:
    """One node's status; `deep` also asks the daemons (vtysh, ovs-appctl), not only the kernel."""
    node = topo.nodes[name]
    ns = NodeStatus(name, node.role, topo.netns(name), str(node.mgmt_ipv4))
    holder = st.holders.get(name, 0)
    ns.running = procs.alive(holder)
    if not ns.running:
        ns.problems.append("not running")
        return ns
    try:
        _check_role(topo, node.role, holder, ns, deep)
    except (procs.CommandError, OSError, ValueError) as e:
        ns.problems.append(f"check failed: {e}")
    return ns


def _check_role(topo: Topology, role: str, holder: int, ns: NodeStatus, deep: bool) -> None:
    if role == "leaf":
        ecmp_problems(topo, ns.name, ospf_route_widths(ns.netns), ns)
    if role in SWITCH_ROLES and deep:
        ns.ospf_expected = expected_adjacencies(topo, ns.name)
        ns.ospf_full = ospf_full(holder)
        ns.bfd_up = bfd_up(holder)
        if ns.ospf_full != ns.ospf_expected:
            ns.problems.append(f"OSPF Full {ns.ospf_full}/{ns.ospf_expected}")
        if bfd_wanted(topo, ns.name) and ns.bfd_up != ns.ospf_expected:
            ns.problems.append(f"BFD up {ns.bfd_up}/{ns.ospf_expected}")
    if role == "leaf" and deep:
        ns.ovs = ovs_up(holder)
    if role == "host":
        ns.addresses = data_addresses(ns.netns)
    if role == "controller":
        ns.controller = listening(holder, OPENFLOW_PORT)
        if not ns.controller:
            ns.problems.append(f"nothing listens on port {OPENFLOW_PORT}")


def collect(topo: Topology, deep: bool = True) -> LabStatus:
    """The whole lab's status."""
    st = state.load(topo.name)
    if st is None:
        return LabStatus(topo.name, str(topo.path), False, [])
    nodes = [check_node(topo, st, name, deep) for name in topo.nodes]
    return LabStatus(topo.name, str(topo.path), all(n.running for n in nodes), nodes)


def underlay_converged(topo: Topology) -> bool:
    """Every leaf has full ECMP to every other leaf (cheap: the kernel only), then every adjacency Full."""
    st = state.load(topo.name)
    if st is None:
        return False
    leaves = [n.name for n in topo.by_role("leaf")]
    if any(check_node(topo, st, leaf, deep=False).problems for leaf in leaves):
        return False
    return collect(topo).healthy


def wait_converged(topo: Topology, timeout: float) -> None:
    """Poll until the underlay has converged; raise WaitTimeout naming what is still missing."""
    from tor_agent.wait import WaitTimeout, wait_until

    try:
        wait_until(lambda: underlay_converged(topo), timeout, 0.05, f"lab {topo.name} underlay to converge")
    except WaitTimeout as e:
        missing = [f"{n.name}: {', '.join(n.problems)}" for n in collect(topo).nodes if n.problems]
        raise WaitTimeout(f"{e}; still missing: {'; '.join(missing)}") from e


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("up" if ok else "DOWN")


def node_detail(n: NodeStatus) -> str:
    """One line of per-role detail."""
    parts = []
    if n.ospf_full is not None:
        parts.append(f"OSPF Full {n.ospf_full}/{n.ospf_expected}, BFD up {n.bfd_up}")
    if n.ovs is not None:
        parts.append(f"OVS {_mark(n.ovs)}")
    if n.addresses:
        parts.append("tenant " + ", ".join(n.addresses))
    if n.controller is not None:
        parts.append(f"OpenFlow :{OPENFLOW_PORT} {'listening' if n.controller else 'NOT listening'}")
    if n.problems:
        parts.append("problems: " + "; ".join(n.problems))
    return ", ".join(parts)


def table(status: LabStatus) -> str:
    """A readable status: one row per node, then the ECMP width matrix between leaves."""
    if not status.nodes:
        return f"lab {status.lab}: down ({status.topology})"
    verdict = "healthy" if status.healthy else "NOT healthy"
    rows = [f"lab {status.lab}: {'up' if status.up else 'partly up'}, {verdict} ({status.topology})", ""]
    rows.append(f"{'NODE':<12}{'ROLE':<12}{'MGMT':<16}{'STATE':<7}DETAIL")
    for n in status.nodes:
        rows.append(f"{n.name:<12}{n.role:<12}{n.mgmt:<16}{'ok' if n.ok else 'FAIL':<7}{node_detail(n)}")
    leaves = [n for n in status.nodes if n.role == "leaf"]
    if len(leaves) > 1:
        rows += ["", "ECMP width (kernel nexthops / spines in common) from row leaf to column leaf's loopback:"]
        rows.append(" " * 10 + "".join(f"{leaf.name:>10}" for leaf in leaves))
        for a in leaves:
            cells = [f"{'/'.join(map(str, a.ecmp[b.name])) if b.name in a.ecmp else '-':>10}" for b in leaves]
            rows.append(f"{a.name:<10}" + "".join(cells))
    return "\n".join(rows)
