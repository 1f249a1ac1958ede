"""Bench: tor-agent reconciling 1000 GRE tunnels, against the other ways of writing them into OVSDB.

One run, each case on a fresh private ovsdb-server + ovs-vswitchd (netdev datapath), every time measured
until ovs-vswitchd has applied the change (Open_vSwitch.cur_cfg caught up):
- create 1000 tunnels (overlay bridge included) from an empty database: tor-agent's reconcile pass vs
  (a) one raw IDL transaction with the same inserts, (b) `ovs-vsctl add-port` per port (a sample,
  extrapolated), (c) ovsdbapp in one transaction (from a separate venv; skipped with the reason if absent);
- remove the 1000 tunnels: tor-agent vs (a) raw IDL (same mutations), (c) ovsdbapp `del_port`;
- no-op reconcile at 1000 tunnels (time, transactions sent, next_cfg unchanged);
- the agent process's RSS at 1000 tunnels (after creating them, and after a restart onto them).
Ratios and goals are printed last.

    .venv/bin/python -m bench.ovs_tunnels [--tunnels 1000] [--vsctl-sample 100] [--ovsdbapp-python PATH]
    (as root, from the repository root)

ovsdbapp is only for this bench, in a throwaway venv that sees Debian's ovs library:
    python3 -m venv --system-site-packages /tmp/ta-ovsdbapp-venv && /tmp/ta-ovsdbapp-venv/bin/pip install ovsdbapp
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import ovs.db.idl
import ovs.poller

from tests.support.ovs_sandbox import OvsSandbox
from tor_agent.config import Intent, load_text
from tor_agent.model.overlay import OWNER_KEY, OWNER_VALUE, OvsDesired, desired_ovs
from tor_agent.ovs.connection import COLUMNS, OvsConnection, fetch_schema
from tor_agent.reconcile.overlay import OverlayReconciler

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OVSDBAPP_PYTHON = "/tmp/ta-ovsdbapp-venv/bin/python"
GOAL_RATIO, GOAL_NOOP_MS, GOAL_RSS_MB = 1.3, 5.0, 35.0
INTENT = """
version: 1
node: {hostname: leaf1, role: leaf, router_id: 198.18.0.11, loopback: 198.18.0.11/32}
underlay:
  ospf: {area: 0.0.0.0}
  uplinks: [{name: eth1, unnumbered: true, mtu: 9000}]
overlay:
  bridge: br-tor
  datapath: netdev
  dpid: "00000000000000a1"
  protocols: [OpenFlow13]
  fail_mode: secure
  tunnels: {key: 100}
"""


def peers(n: int) -> frozenset[IPv4Address]:
    base = int(IPv4Address("198.19.0.0"))
    return frozenset(IPv4Address(base + i) for i in range(1, n + 1))


def overlay_only(intent: Intent, n: int) -> OvsDesired:
    """The overlay bridge, its own port and n tunnels (no uplink bridges: every case writes the same rows)."""
    d = desired_ovs(intent, peers(n))
    ports = {k: p for k, p in d.ports.items() if p.bridge == "br-tor"}
    return OvsDesired({"br-tor": d.bridges["br-tor"]}, ports, d.tunnels)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def port_count(box: OvsSandbox) -> int:
    return len(box.vsctl("list-ports", "br-tor").split())


# --- tor-agent ------------------------------------------------------------------------------------


@dataclass
class AgentFigures:
    create: list[float] = field(default_factory=list)
    remove: list[float] = field(default_factory=list)
    noop_ms: list[float] = field(default_factory=list)
    full_noop_ms: list[float] = field(default_factory=list)
    noop_transactions: int = 0
    next_cfg_moved: bool = False


def bench_agent(desired: OvsDesired, n: int, fig: AgentFigures, measure_noop: bool) -> None:
    with OvsSandbox() as box, OvsConnection.open(box.remote, vswitchd_timeout=120, txn_timeout=120) as conn:
        reconciler = OverlayReconciler(conn, desired)
        fig.create.append(timed(lambda: reconciler.run_once().raise_for_errors()))
        assert port_count(box) == n, port_count(box)
        if measure_noop:
            measure_noops(box, conn, reconciler, fig)
        reconciler.desired = overlay_only(load_text(INTENT), 0)
        fig.remove.append(timed(lambda: reconciler.run_once().raise_for_errors()))
        assert port_count(box) == 0


def measure_noops(box: OvsSandbox, conn: OvsConnection, reconciler: OverlayReconciler, fig: AgentFigures) -> None:
    sent, next_cfg = conn.transactions, box.vsctl("get", "Open_vSwitch", ".", "next_cfg")
    reconciler.run_once()  # the pass that follows a write re-reads the rows ovs-vswitchd updated
    for _ in range(200):
        conn.run()
        start = time.perf_counter()
        report = reconciler.run_once()
        fig.noop_ms.append((time.perf_counter() - start) * 1000)
        assert not report.plan.actions
    for _ in range(10):
        start = time.perf_counter()
        reconciler.run_once(full=True)
        fig.full_noop_ms.append((time.perf_counter() - start) * 1000)
    fig.noop_transactions = conn.transactions - sent
    fig.next_cfg_moved = box.vsctl("get", "Open_vSwitch", ".", "next_cfg") != next_cfg


# --- (a) raw IDL ----------------------------------------------------------------------------------


class RawIdl:
    """The same inserts and mutations written by hand with the IDL, registering the same columns."""

    def __init__(self, remote: str) -> None:
        helper = ovs.db.idl.SchemaHelper(schema_json=fetch_schema(remote, 10))
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        self.idl = ovs.db.idl.Idl(remote, helper)
        self.run_until(lambda: bool(self.idl.has_ever_connected()))

    def run_until(self, done: Callable[[], bool]) -> None:
        while True:
            self.idl.run()
            if done():
                return
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            poller.timer_wait(1000)
            poller.block()

    def root(self) -> Any:
        return next(iter(self.idl.tables["Open_vSwitch"].rows.values()))

    def commit_and_wait(self, txn: Any) -> None:
        self.root().increment("next_cfg")
        status = txn.commit_block()
        assert status == ovs.db.idl.Transaction.SUCCESS, txn.get_error()
        next_cfg = txn.get_increment_new_value()
        self.run_until(lambda: bool(self.root().cur_cfg >= next_cfg))

    def create(self, desired: OvsDesired) -> None:
        txn = ovs.db.idl.Transaction(self.idl)
        mark = {OWNER_KEY: OWNER_VALUE}
        spec = desired.bridges["br-tor"]
        br = txn.insert(self.idl.tables["Bridge"])
        br.name, br.datapath_type, br.protocols = spec.name, spec.datapath_type, list(spec.protocols)
        br.fail_mode, br.other_config, br.external_ids = [spec.fail_mode], dict(spec.other_config), mark
        ports = []
        for p in desired.ports.values():
            iface = txn.insert(self.idl.tables["Interface"])
            i = p.interface
            iface.name, iface.type, iface.options, iface.external_ids = i.name, i.type, dict(i.options), mark
            if i.mtu_request is not None:
                iface.mtu_request = [i.mtu_request]
            port = txn.insert(self.idl.tables["Port"])
            port.name, port.interfaces, port.external_ids = p.name, [iface], mark
            ports.append(port)
        br.ports = ports
        self.root().addvalue("bridges", br)
        self.commit_and_wait(txn)

    def remove_tunnels(self) -> None:
        txn = ovs.db.idl.Transaction(self.idl)
        (br,) = self.idl.tables["Bridge"].rows.values()
        for port in list(br.ports):
            if port.name != "br-tor":
                br.delvalue("ports", port)
        self.commit_and_wait(txn)


def bench_raw(desired: OvsDesired, n: int) -> tuple[float, float]:
    with OvsSandbox() as box:
        raw = RawIdl(box.remote)
        create = timed(lambda: raw.create(desired))
        assert port_count(box) == n
        remove = timed(raw.remove_tunnels)
        assert port_count(box) == 0
        raw.idl.close()
    return create, remove


def fmt(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.3f} s (runs: {', '.join(f'{x:.3f}' for x in samples)})"


# --- (b) ovs-vsctl per port -----------------------------------------------------------------------


def bench_vsctl(desired: OvsDesired, sample: int) -> tuple[float, float]:
    """Seconds for `sample` add-port calls (each waits for ovs-vswitchd), and the add-br before them."""
    tunnels = [p.interface for p in desired.ports.values() if p.interface.type == "gre"][:sample]
    with OvsSandbox() as box:
        spec = desired.bridges["br-tor"]
        add_br = timed(
            lambda: box.vsctl(
                "add-br", "br-tor", "--", "set", "Bridge", "br-tor", f"datapath_type={spec.datapath_type}",
                "protocols=OpenFlow13", "fail_mode=secure", "other_config:datapath-id=00000000000000a1",
            )
        )  # fmt: skip
        start = time.perf_counter()
        for i in tunnels:
            opts = [f"options:{k}={v}" for k, v in i.options]
            box.vsctl("add-port", "br-tor", i.name, "--", "set", "Interface", i.name, "type=gre", *opts)
        ports = time.perf_counter() - start
        assert port_count(box) == len(tunnels)
    return add_br, ports


# --- (c) ovsdbapp ---------------------------------------------------------------------------------

OVSDBAPP = textwrap.dedent(
    """
    import json, sys, time
    import ovs
    from ovsdbapp.backend.ovs_idl import connection
    from ovsdbapp.schema.open_vswitch import impl_idl
    remote, tunnels = sys.argv[1], json.loads(sys.argv[2])
    idl = connection.OvsdbIdl.from_server(remote, "Open_vSwitch")
    api = impl_idl.OvsdbIdl(connection.Connection(idl=idl, timeout=600))
    mark = {"tor-agent-owner": "tor-agent"}
    start = time.perf_counter()
    with api.transaction(check_error=True) as txn:
        txn.add(api.add_br("br-tor", datapath_type="netdev"))
        txn.add(api.db_set("Bridge", "br-tor", ("protocols", ["OpenFlow13"]), ("fail_mode", "secure"),
                           ("other_config", {"datapath-id": "00000000000000a1", "disable-in-band": "true"}),
                           ("external_ids", mark)))
        for name, options in tunnels:
            txn.add(api.add_port("br-tor", name, type="gre", options=options, external_ids=mark))
    create = time.perf_counter() - start
    start = time.perf_counter()
    with api.transaction(check_error=True) as txn:
        for name, _ in tunnels:
            txn.add(api.del_port(name, bridge="br-tor"))
    remove = time.perf_counter() - start
    print(json.dumps({"create": create, "remove": remove, "ovs": ovs.__file__}))
    """
)


def bench_ovsdbapp(desired: OvsDesired, python: str) -> dict[str, Any] | str:
    """ovsdbapp's figures, or why there are none."""
    if not Path(python).exists():
        return f"unavailable: no {python} (create it as the module docstring says, or pass --ovsdbapp-python)"
    probe = subprocess.run([python, "-c", "import ovsdbapp"], capture_output=True, text=True, timeout=60, check=False)
    if probe.returncode != 0:
        return f"unavailable: {python} cannot import ovsdbapp"
    tunnels = [[p.name, dict(p.interface.options)] for p in desired.ports.values() if p.interface.type == "gre"]
    with OvsSandbox() as box:
        done = subprocess.run(
            [python, "-c", OVSDBAPP, box.remote, json.dumps(tunnels)],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if done.returncode != 0:
            return f"failed: {done.stderr.strip()[-500:]}"
        assert port_count(box) == 0
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the agent's memory ---------------------------------------------------------------------------

AGENT = textwrap.dedent(
    """
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])

    bare = status("VmRSS:")
    import json, sys, time
    from ipaddress import IPv4Address
    from tor_agent.config import load_text
    config = status("VmRSS:")
    from tor_agent.model.overlay import desired_ovs
    from tor_agent.ovs.connection import OvsConnection
    from tor_agent.reconcile.overlay import OverlayReconciler
    imports = status("VmRSS:")

    remote, n, intent_text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    base = int(IPv4Address("198.19.0.0"))
    desired = desired_ovs(load_text(intent_text), frozenset(IPv4Address(base + i) for i in range(1, n + 1)))
    start = time.perf_counter()
    conn = OvsConnection.open(remote, vswitchd_timeout=120, txn_timeout=120)
    report = OverlayReconciler(conn, desired).run_once()
    first = time.perf_counter() - start
    OverlayReconciler(conn, desired).run_once()
    print(json.dumps({"rss_kb": status("VmRSS:"), "hwm_kb": status("VmHWM:"), "first_pass": first,
                      "wrote": report.wrote, "errors": str(report.error or ""),
                      "stages_kb": [bare, config, imports]}))
    """
)


def bench_rss(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent process (config, model, driver, reconciler) creating n tunnels; then restarted onto them."""
    out = []
    with OvsSandbox() as box:
        box.netns_exec("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-p")
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", AGENT, box.remote, str(n), INTENT],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
                cwd=REPO,
            )
            out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


# --- report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunnels", type=int, default=1000)
    ap.add_argument("--vsctl-sample", type=int, default=100)
    ap.add_argument("--ovsdbapp-python", default=DEFAULT_OVSDBAPP_PYTHON)
    ap.add_argument("--runs", type=int, default=3, help="runs of tor-agent and raw IDL (medians compared)")
    args = ap.parse_args()
    n = args.tunnels
    desired = overlay_only(load_text(INTENT), n)
    print(f"python {sys.version.split()[0]}, ovs library {ovs.__file__}")
    print(f"{n} GRE tunnels on a netdev bridge; every time is until ovs-vswitchd applied it (cur_cfg)\n")

    # tor-agent and (a) alternate, each on a fresh OVS, so that both see the same machine load.
    agent = AgentFigures()
    raw_creates, raw_removes = [], []
    for i in range(args.runs):
        bench_agent(desired, n, agent, measure_noop=i == 0)
        create, remove = bench_raw(desired, n)
        raw_creates.append(create)
        raw_removes.append(remove)
    print(f"tor-agent   create {fmt(agent.create)}   remove {fmt(agent.remove)}")
    print(f"(a) raw IDL create {fmt(raw_creates)}   remove {fmt(raw_removes)}   (one transaction each)")
    raw_create, raw_remove = statistics.median(raw_creates), statistics.median(raw_removes)
    agent_create, agent_remove = statistics.median(agent.create), statistics.median(agent.remove)
    add_br, sample = bench_vsctl(desired, args.vsctl_sample)
    vsctl = add_br + sample * n / args.vsctl_sample
    print(
        f"(b) ovs-vsctl add-port per port: {args.vsctl_sample} ports {sample:.3f} s "
        f"({sample / args.vsctl_sample * 1000:.1f} ms/port) -> {n} ports EXTRAPOLATED linearly: {vsctl:.1f} s "
        "(an underestimate: each add-port's cost grows with the ports already there)"
    )
    app = bench_ovsdbapp(desired, args.ovsdbapp_python)
    if isinstance(app, str):
        print(f"(c) ovsdbapp: {app}")
    else:
        print(f"(c) ovsdbapp  create {app['create']:7.3f} s   remove {app['remove']:7.3f} s   (ovs from {app['ovs']})")

    noop = sorted(agent.noop_ms)
    p95 = noop[int(len(noop) * 0.95) - 1]
    print(
        f"\nno-op reconcile at {n} tunnels ({len(noop)} passes): median {statistics.median(noop):.2f} ms, "
        f"p95 {p95:.2f} ms, max {noop[-1]:.2f} ms; full re-read pass median "
        f"{statistics.median(agent.full_noop_ms):.1f} ms; transactions sent: {agent.noop_transactions}; "
        f"next_cfg moved: {agent.next_cfg_moved}"
    )
    created, restarted = bench_rss(n)
    for label, r in (("creating them", created), ("restarted onto them", restarted)):
        print(
            f"agent process at {n} tunnels, {label}: RSS {r['rss_kb'] / 1024:.1f} MB "
            f"(peak {r['hwm_kb'] / 1024:.1f} MB), open + first pass {r['first_pass']:.3f} s, "
            f"wrote {r['wrote']} {r['errors']}"
        )
    bare, config, imports = (kb / 1024 for kb in created["stages_kb"])
    print(
        f"  of which: interpreter {bare:.1f} MB, + tor_agent.config (yaml) {config - bare:.1f} MB, "
        f"+ ovs library, driver, reconciler {imports - config:.1f} MB, + {n} tunnels (IDL replica, snapshot "
        f"cache, model) {created['rss_kb'] / 1024 - imports:.1f} MB after creating them, "
        f"{restarted['rss_kb'] / 1024 - imports:.1f} MB after a restart"
    )

    rss = max(created["rss_kb"], restarted["rss_kb"]) / 1024
    create_ratio, remove_ratio = agent_create / raw_create, agent_remove / raw_remove
    noop_ok = statistics.median(noop) <= GOAL_NOOP_MS and agent.noop_transactions == 0 and not agent.next_cfg_moved
    print("\nratios (goal):")
    print(
        f"  create: tor-agent / raw IDL = {create_ratio:.2f}x (<= {GOAL_RATIO}x) {verdict(create_ratio <= GOAL_RATIO)}"
    )
    print(
        f"  remove: tor-agent / raw IDL = {remove_ratio:.2f}x (<= {GOAL_RATIO}x) {verdict(remove_ratio <= GOAL_RATIO)}"
    )
    print(f"  create: ovs-vsctl per port (extrapolated) / tor-agent = {vsctl / agent_create:.0f}x slower")
    if not isinstance(app, str):
        print(f"  create: ovsdbapp / tor-agent = {app['create'] / agent_create:.2f}x")
        print(f"  remove: ovsdbapp / tor-agent = {app['remove'] / agent_remove:.1f}x")
    print(
        f"  no-op: median {statistics.median(noop):.2f} ms (<= {GOAL_NOOP_MS} ms), "
        f"{agent.noop_transactions} writes {verdict(noop_ok)}"
    )
    print(f"  agent RSS at {n} tunnels: {rss:.1f} MB (<= {GOAL_RSS_MB} MB) {verdict(rss <= GOAL_RSS_MB)}")


if __name__ == "__main__":
    main()
