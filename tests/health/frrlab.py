"""A small FRR fabric for the health tests: 2 spines and 2 leaves, each in a network namespace the test creates.

Every FRR daemon runs inside its node's namespace with its own socket directory (`--vty_socket`, `-z`,
`--bfdctl`), so it never meets the host's FRR or another node's. Links and addresses are put in place by
tor-agent's own links driver, FRR is configured from tor-agent's own rendering (the intents set the
LSA timers to 0: FRR's defaults add 5-15 s to convergence, docs/design.md, fact 15) plus a lab-only SPF timer.
`down()` kills every process started here, by pid, and deletes the namespaces and directories.

    leaf1 eth1 198.18.1.1/31 ---- 198.18.1.0/31 eth1 spine1 eth2 (unnumbered) ---- eth1 (unnumbered) leaf2
    leaf1 eth2 198.18.1.3/31 ---- 198.18.1.2/31 eth1 spine2 eth2 (unnumbered) ---- eth2 (unnumbered) leaf2
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from links_stage import converge_links
from nsutil import Netns, sh

from tor_agent.config import Intent, load_text
from tor_agent.frr.vtysh import Vtysh
from tor_agent.health import Degraded, UnderlayState, collect, verify
from tor_agent.health.underlay import bfd_enabled
from tor_agent.net import kernel_routes
from tor_agent.render import render_frr
from tor_agent.wait import wait_until

FRR_DIR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "ospfd", "bfdd")
# Not in the intent: after a flap, FRR's default SPF hold (5 s) would slow every re-convergence the tests wait for.
LAB_TUNING = """router ospf
 timers throttle spf 0 50 500
exit
"""
OSPF = (
    "ospf: {area: 0.0.0.0, maximum_paths: 8, hello_interval_s: 1, dead_interval_s: 3, lsa_throttle_ms: 0,"
    " lsa_min_arrival_ms: 0, bfd: {rx_ms: 100, tx_ms: 100}}"
)


def skip_reason() -> str | None:
    """Why this fabric cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, FRR)"
    missing = [str(FRR_DIR / d) for d in DAEMONS if not (FRR_DIR / d).exists()]
    if missing or shutil.which("vtysh") is None:
        return "needs FRR (apt install frr): " + ", ".join(missing or ["vtysh"])
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return "needs the frr user (apt install frr)"
    return None


def _leaf(name: str, number: int, uplinks: str, peer: str) -> str:
    return f"""
version: 1
node: {{hostname: {name}, role: leaf, router_id: 198.18.0.{number}, loopback: 198.18.0.{number}/32}}
underlay:
  {OSPF}
  uplinks: {uplinks}
overlay:
  bridge: br-tor
  datapath: system
  dpid: "00000000000000{number:02x}"
  access_ports: []
  tunnels: {{peers: [{peer}], discover: {{ospf_prefix: 198.18.0.8/29}}}}
"""


def _spine(name: str, number: int, uplinks: str) -> str:
    return f"""
version: 1
node: {{hostname: {name}, role: spine, router_id: 198.18.0.{number}, loopback: 198.18.0.{number}/32}}
underlay:
  {OSPF}
  uplinks: {uplinks}
"""


def _links(*uplinks: str) -> str:
    return "[" + ", ".join(f"{{{u}, mtu: 9000}}" for u in uplinks) + "]"


INTENTS = {
    "leaf1": _leaf(
        "leaf1",
        11,
        _links("name: eth1, address: 198.18.1.1/31, cost: 10", "name: eth2, address: 198.18.1.3/31, cost: 10"),
        "198.18.0.12",
    ),
    "leaf2": _leaf(
        "leaf2",
        12,
        _links("name: eth1, unnumbered: true, cost: 10", "name: eth2, unnumbered: true, cost: 10"),
        "198.18.0.11",
    ),
    "spine1": _spine("spine1", 1, _links("name: eth1, address: 198.18.1.0/31", "name: eth2, unnumbered: true")),
    "spine2": _spine("spine2", 2, _links("name: eth1, address: 198.18.1.2/31", "name: eth2, unnumbered: true")),
}
# (node, interface) pairs joined by a veth
LINKS = (
    (("leaf1", "eth1"), ("spine1", "eth1")),
    (("leaf1", "eth2"), ("spine2", "eth1")),
    (("leaf2", "eth1"), ("spine1", "eth2")),
    (("leaf2", "eth2"), ("spine2", "eth2")),
)


@dataclass
class Node:
    """One router: a namespace, a private FRR directory, its intent."""

    name: str
    ns: Netns
    workdir: Path
    intent: Intent
    pids: list[int] = field(default_factory=list)

    @property
    def vtysh_argv(self) -> list[str]:
        """vtysh talking to this node's FRR."""
        return ["ip", "netns", "exec", self.ns.name, "vtysh", "--vty_socket", str(self.workdir)]

    def vtysh(self, *commands: str, stdin_file: Path | None = None) -> str:
        """Run vtysh commands (or a config file) against this node's FRR."""
        args = ["-f", str(stdin_file)] if stdin_file else [a for c in commands for a in ("-c", c)]
        return sh(*self.vtysh_argv, *args).stdout

    def start_frr(self) -> None:
        """Start zebra, ospfd and bfdd inside the namespace, then configure them from the rendered intent."""
        for daemon in DAEMONS:
            args = [
                str(FRR_DIR / daemon), "-d", "-F", "traditional", "-P", "0",
                "--vty_socket", str(self.workdir), "-i", str(self.workdir / f"{daemon}.pid"),
                "-f", str(self.workdir / f"{daemon}.conf"), "--log", f"file:{self.workdir / daemon}.log",
            ]  # fmt: skip
            args += ["-z", str(self.workdir / "zserv.api")]
            if daemon == "bfdd":
                args += ["--bfdctl", str(self.workdir / "bfdd.sock")]
            self.ns.exec(*args)
            pid_file = self.workdir / f"{daemon}.pid"
            self.pids.append(wait_until(lambda f=pid_file: _read_pid(f), 10, what=f"{self.name} {daemon} pid file"))
        wait_until(lambda: (self.workdir / "zebra.vty").exists(), 10, what=f"{self.name} zebra vty")
        config = self.workdir / "frr.conf"
        config.write_text(render_frr(self.intent) + LAB_TUNING)
        self.vtysh(stdin_file=config)

    def stop_frr(self) -> None:
        """SIGTERM every daemon started here, SIGKILL what is left; by pid, plus anything left in the namespace."""
        pids = set(self.pids) | {int(p) for p in sh("ip", "netns", "pids", self.ns.name, check=False).stdout.split()}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(Exception):
                wait_until(lambda: not any(_alive(p) for p in pids), 3, what=f"{self.name} FRR to exit")
                break
        self.pids.clear()

    def logs(self) -> str:
        """The daemons' logs, for a failure message."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.workdir.glob("*.log"))


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Fabric:
    """The four routers; `up()` builds everything, `down()` removes everything."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tor-agent-health-"))
        os.chmod(self.root, 0o755)
        self.nodes: dict[str, Node] = {}

    def up(self) -> Fabric:
        frr = pwd.getpwnam("frr")
        tag = os.getpid()
        try:
            for name, text in INTENTS.items():
                intent = load_text(text, f"{name}.yaml")
                workdir = self.root / name
                workdir.mkdir()
                os.chown(workdir, frr.pw_uid, frr.pw_gid)
                self.nodes[name] = Node(name, Netns(f"ta-h{tag}-{name}"), workdir, intent)
            for (a, ifa), (b, ifb) in LINKS:
                na, nb = self.nodes[a].ns, self.nodes[b].ns
                na.ip("link", "add", ifa, "type", "veth", "peer", "name", f"t{tag}", "netns", nb.name)
                nb.ip("link", "set", f"t{tag}", "name", ifb)
            for node in self.nodes.values():
                node.ns.run(converge_links, node.workdir / "addresses.json", node.intent)
                node.start_frr()
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Stop every daemon, delete every namespace and directory created here."""
        for node in self.nodes.values():
            node.stop_frr()
            node.ns.delete()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"=== {n.name}\n{n.logs()}" for n in self.nodes.values())

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]


def read_state(node: Node) -> UnderlayState:
    """What `tor-agent status/verify` reads on `node`: its FRR and its kernel FIB, from inside its namespace."""
    reader = Vtysh(options=("--vty_socket", str(node.workdir)))
    return node.ns.run(collect, reader, kernel_routes, bfd_enabled(node.intent))


def problems(node: Node) -> list[Degraded]:
    """`verify` on `node`."""
    return verify(read_state(node), node.intent)


def wait_healthy(fabric: Fabric, budget_s: float = 30.0) -> None:
    """Poll until every node verifies clean; on timeout the message lists what is still degraded."""
    for node in fabric.nodes.values():
        wait_until(lambda n=node: not problems(n), budget_s, interval=0.2, what=f"{node.name} to verify healthy")
