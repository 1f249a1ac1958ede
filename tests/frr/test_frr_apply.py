"""`tor-agent apply`/`diff` against real FRR 8.4 daemons, each node in its own namespaces.

Layer by layer: FRR's running configuration (what was applied), the persisted frr.conf (what a
restart brings back), then OSPF state (adjacencies that must not be reset).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from frrnode import FrrNode, link, veth

from tor_agent.cli import main
from tor_agent.config import Intent, load
from tor_agent.frr.apply import ApplyFailed, ConfigRefused, DaemonsDown, FrrApplyResult, FrrDriver, NotApplied
from tor_agent.frr.config_tree import parse_config
from tor_agent.frr.delta import Scope, compute_delta
from tor_agent.frr.ledger import InterfaceLedger
from tor_agent.frr.vtysh import Configured, Running, Session, Vtysh
from tor_agent.model.links import LinksSpec
from tor_agent.net import KernelState, LinkResult, LinksPlan
from tor_agent.ovs.routes import OvsRouteTable
from tor_agent.reconcile import drivers as reconcile_drivers
from tor_agent.reconcile import engine as reconcile_engine
from tor_agent.reconcile.drivers import Drivers
from tor_agent.reconcile.engine import Engine
from tor_agent.reconcile.lock import EngineLock
from tor_agent.reconcile.ovs_rows import OvsRows
from tor_agent.render import render_frr
from tor_agent.wait import wait_until

MakeNode = Callable[[str], FrrNode]
Link = tuple[str, str, "int | None"]
CLI = [str(Path(sys.executable).with_name("tor-agent"))]


@dataclass(frozen=True)
class RecordingVtysh(Vtysh):
    """Records which vtysh operations ran (a test seam: same behaviour as Vtysh)."""

    calls: list[str] = field(default_factory=list, compare=False)

    def running(self) -> Running:
        self.calls.append("running")
        return super().running()

    def check(self, text: str) -> None:
        self.calls.append("check")
        super().check(text)

    def configure(self, text: str, session: Session | None = None) -> Configured:
        self.calls.append("configure")
        return super().configure(self.tamper(text), session)

    def tamper(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class RefusingVtysh(RecordingVtysh):
    """The first batch loses its `no ip ospf area` lines, so ospfd refuses the new area (another one is set)."""

    def tamper(self, text: str) -> str:
        if self.calls.count("configure") != 1:
            return text
        return "".join(x for x in text.splitlines(keepends=True) if "no ip ospf area" not in x)


@dataclass(frozen=True)
class JunkVtysh(RecordingVtysh):
    """The first batch also carries a line ospfd refuses, which the desired configuration does not need."""

    def tamper(self, text: str) -> str:
        return text + "interface eth1\n ip ospf area 0.0.0.9\nexit\n" if self.calls.count("configure") == 1 else text


@dataclass(frozen=True)
class LosingVtysh(RecordingVtysh):
    """The first batch loses its `ip ospf cost` lines on the way, as if FRR ignored them."""

    def tamper(self, text: str) -> str:
        lines = text.splitlines(keepends=True)
        return "".join(x for x in lines if "ip ospf cost" not in x) if self.calls.count("configure") == 1 else text


def intent_file(
    directory: Path,
    hostname: str,
    router_id: str,
    links: Sequence[Link],
    *,
    area: str = "0.0.0.0",
    bfd: bool = True,
    maximum_paths: int = 8,
) -> Path:
    """A spine intent with fast hellos; `links` are (name, address, cost)."""
    lines = [
        "version: 1",
        f"node: {{hostname: {hostname}, role: spine, router_id: {router_id}, loopback: {router_id}/32}}",
        "underlay:",
        "  ospf:",
        f"    area: {area}",
        f"    maximum_paths: {maximum_paths}",
        "    hello_interval_s: 1",
        "    dead_interval_s: 4",
        *(["    bfd: {enabled: true, rx_ms: 100, tx_ms: 100, multiplier: 3}"] if bfd else []),
        "  uplinks:",
        *(f"    - {{name: {n}, address: {a}" + (f", cost: {c}}}" if c else "}") for n, a, c in links),
    ]
    path = directory / f"{hostname}-{abs(hash(tuple(lines)))}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


LINKS: list[Link] = [("eth1", "198.18.1.0/31", 10), ("eth2", "198.18.1.2/31", 10)]


def drivers(node: FrrNode, tmp_path: Path, vtysh: Vtysh | None = None) -> FrrDriver:
    ledger = InterfaceLedger.in_dir(tmp_path / f"state-{node.name}")
    return FrrDriver(vtysh or node.vtysh(), ledger, config_file=node.frr_conf())


def apply_text(driver: FrrDriver, text: str) -> FrrApplyResult:
    """The engine's FRR stage for a rendering: read, plan, apply."""
    return driver.apply(driver.plan(text, driver.read()))


def apply_underlay(intent: Intent, driver: FrrDriver) -> FrrApplyResult:
    """The engine's FRR stage for an intent."""
    return apply_text(driver, render_frr(intent))


def leaf(make: MakeNode, name: str = "leaf1") -> FrrNode:
    node = make(name)
    for ifname, address, _ in LINKS:
        veth(node, ifname, address)
    return node


def cli(node: FrrNode, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOR_AGENT_STATE_DIR": str(tmp_path / f"state-{node.name}")}
    return node.run(*CLI, *args, check=False, env=env)


def owned_delta(node: FrrNode, intent: Path, ledger: Sequence[str] = ()) -> Any:
    desired = parse_config(render_frr(load(intent)))
    return compute_delta(desired, parse_config(node.vtysh().running_config()), Scope.of(desired, ledger))


def vty(node: FrrNode, *commands: str) -> None:
    args = [a for c in ("configure", *commands) for a in ("-c", c)]
    node.run("vtysh", *args)


# --- configuration layer ---------------------------------------------------------------------


def test_apply_from_empty_then_second_apply_sends_nothing(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    recording = RecordingVtysh(prefix=node.enter())
    first = apply_underlay(load(intent), drivers(node, tmp_path, recording))
    assert first.changed and not first.delta.notes and not first.messages
    assert recording.calls == ["running", "check", "configure"]  # verified on the session's own read
    running = node.vtysh().running_config()
    rendered = render_frr(load(intent))
    for line in rendered.splitlines():
        assert line in running.splitlines() or line in ("!", "end"), line
    assert not owned_delta(node, intent)

    recording = RecordingVtysh(prefix=node.enter())
    second = apply_underlay(load(intent), drivers(node, tmp_path, recording))
    assert not second.changed
    assert recording.calls == ["running"]  # no parser check, no config command, no write
    assert node.vtysh().running_config() == running


GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir() if (p / "intent.yaml").is_file()))
def test_every_golden_rendering_applies_and_round_trips(frr_node: MakeNode, tmp_path: Path, case: str) -> None:
    """Each golden frr.conf is in FRR's own layout: applied once, FRR shows it back exactly (no-op after)."""
    intent = load(GOLDEN / case / "intent.yaml")
    node = frr_node(intent.node.hostname)
    assert apply_underlay(intent, drivers(node, tmp_path)).changed
    again = apply_underlay(intent, drivers(node, tmp_path))
    assert not again.changed and not again.delta.notes


def test_large_batch_is_verified_from_its_own_session(frr_node: MakeNode, tmp_path: Path) -> None:
    node = frr_node("spine1")  # 120 uplinks FRR knows only from its configuration (no kernel links needed)
    links: list[Link] = [(f"eth{i}", f"198.19.{i}.0/31", 10 + i) for i in range(1, 121)]
    intent = intent_file(tmp_path, "spine1", "198.18.0.1", links)
    recording = RecordingVtysh(prefix=node.enter())
    result = apply_underlay(load(intent), drivers(node, tmp_path, recording))
    assert len(result.delta.changes) > 800
    assert recording.calls == ["running", "check", "configure"]
    assert not owned_delta(node, intent)


OVERRIDES = """\
frr defaults traditional
hostname leaf1
log syslog {log}
service integrated-vtysh-config
interface eth1
 ip ospf area 0.0.0.0
 ip ospf bfd
 ip ospf bfd profile {profile}
 ip ospf cost {cost}
 ip ospf dead-interval {dead}
 ip ospf hello-interval {hello}
 ip ospf network {network}
exit
router ospf
 ospf router-id {router_id}
 auto-cost reference-bandwidth {bandwidth}
 timers throttle lsa all {lsa}
 timers lsa min-arrival {lsa}
 maximum-paths {paths}
exit
bfd
 profile tor-agent
  detect-multiplier {multiplier}
  transmit-interval {interval}
  receive-interval {interval}
 exit
 profile other
 exit
exit
end
"""


def test_every_single_valued_command_is_overridden_in_place(frr_node: MakeNode, tmp_path: Path) -> None:
    """Each value change is one line FRR takes as is: verified both ways, no removal sent."""
    node = leaf(frr_node)
    values = [
        {"log": "informational", "profile": "tor-agent", "cost": 10, "dead": 4, "hello": 1, "network": "point-to-point",
         "router_id": "198.18.0.1", "bandwidth": 1000, "lsa": 0, "paths": 4, "multiplier": 5, "interval": 100},
        {"log": "warnings", "profile": "other", "cost": 20, "dead": 8, "hello": 2, "network": "point-to-multipoint",
         "router_id": "198.18.0.2", "bandwidth": 2000, "lsa": 10, "paths": 8, "multiplier": 7, "interval": 200},
    ]  # fmt: skip
    driver = FrrDriver(node.vtysh(), config_file=node.frr_conf())
    apply_text(driver, OVERRIDES.format(**values[0]))
    for value in (values[1], values[0]):
        result = apply_text(driver, OVERRIDES.format(**value))
        assert {c.op for c in result.delta.changes} == {"replace"} and len(result.delta.changes) == 14
        assert " no " not in result.delta.commands()
    assert not apply_text(driver, OVERRIDES.format(**values[0])).changed


def test_apply_persists_and_restart_brings_back_the_same(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    apply_underlay(load(intent), drivers(node, tmp_path))
    before = node.vtysh().running_config()
    assert "ip ospf bfd profile tor-agent" in node.run("cat", "/etc/frr/frr.conf").stdout
    node.restart_frr()
    wait_until(lambda: "router ospf" in node.vtysh().running_config(), 10, what="ospfd config after restart")
    assert node.vtysh().running_config() == before


def test_hand_edit_shown_by_diff_and_repaired_by_apply(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    assert cli(node, tmp_path, "apply", str(intent)).returncode == 0
    vty(node, "interface eth1", "ip ospf cost 99", "ip ospf mtu-ignore")

    shown = cli(node, tmp_path, "diff", str(intent))
    assert shown.returncode == 0
    assert shown.stdout == "interface eth1\n- ip ospf mtu-ignore\n- ip ospf cost 99\n+ ip ospf cost 10\n"
    assert cli(node, tmp_path, "diff", "--exit-code", str(intent)).returncode == 3
    assert "ip ospf cost 99" in node.vtysh().running_config()  # diff changed nothing

    repaired = cli(node, tmp_path, "apply", str(intent))
    assert repaired.returncode == 0 and "2 changes applied" in repaired.stdout, repaired.stderr
    assert not owned_delta(node, intent)
    after = cli(node, tmp_path, "diff", "--exit-code", str(intent))
    assert (after.returncode, after.stdout) == (0, "FRR: nothing to change\n")


def test_hand_made_lines_survive_apply(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    apply_underlay(load(intent), drivers(node, tmp_path))
    vty(
        node,
        "ip route 10.0.0.0/8 Null0",
        "interface eth1",
        "description to spine1",
        "exit",
        "interface eth9",
        "ip ospf cost 7",
        "exit",
        "bfd",
        "profile manual",
        "detect-multiplier 9",
    )
    hand_made = [
        "ip route 10.0.0.0/8 Null0",
        " description to spine1",
        "interface eth9",
        " ip ospf cost 7",
        " profile manual",
        "  detect-multiplier 9",
    ]

    changed = intent_file(tmp_path, "leaf1", "198.18.0.11", [LINKS[0]], bfd=False, maximum_paths=4)
    result = apply_underlay(load(changed), drivers(node, tmp_path))
    running = node.vtysh().running_config().splitlines()
    assert all(line in running for line in hand_made), running
    assert "interface eth9: OSPF lines not made by tor-agent, left as they are" in result.delta.notes
    assert not owned_delta(node, changed, ["eth2"])
    routes = node.show_json("show ip route 10.0.0.0/8 json")
    assert routes["10.0.0.0/8"][0]["protocol"] == "static"


def test_uplink_leaving_the_intent_loses_only_its_ospf_lines(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)), drivers(node, tmp_path))
    vty(node, "interface eth2", "description spare uplink")
    result = apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS[:1])), drivers(node, tmp_path))
    assert {c.path for c in result.delta.changes} == {("interface eth2",)}
    stanza = parse_config(node.vtysh().running_config()).lines(("interface eth2",))
    assert stanza == ("description spare uplink",)
    assert InterfaceLedger.in_dir(tmp_path / "state-leaf1").load() == {"lo", "eth1"}


def test_invalid_intent_changes_nothing(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    cli(node, tmp_path, "apply", str(intent))
    before = node.vtysh().running_config()
    bad = tmp_path / "bad.yaml"
    bad.write_text(intent.read_text().replace("cost: 10}", "cost: 0}", 1))
    result = cli(node, tmp_path, "apply", str(bad))
    assert result.returncode == 2 and "underlay.uplinks[0].cost" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert node.vtysh().running_config() == before


def test_text_frr_parser_refuses_changes_nothing(frr_node: MakeNode, tmp_path: Path) -> None:
    """FRR #10453: an invalid file must never turn into "delete everything"."""
    node = leaf(frr_node)
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)), drivers(node, tmp_path))
    before = node.vtysh().running_config()
    recording = RecordingVtysh(prefix=node.enter())
    broken = "interface eth1\n ip ospf cost 20\n ip ospf no-such-thing\nexit\nrouter ospf\nexit\nend\n"
    with pytest.raises(ConfigRefused, match=r"rendered line 3 `ip ospf no-such-thing`: % Unknown command") as info:
        apply_text(FrrDriver(recording, InterfaceLedger.in_dir(tmp_path / "state-leaf1")), broken)
    assert "nothing was changed" in str(info.value)
    assert recording.calls == ["running", "check"]
    assert node.vtysh().running_config() == before


def test_refused_line_rolls_back(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)), drivers(node, tmp_path))
    vty(node, "ip route 10.0.0.0/8 Null0")
    before = node.vtysh().running_config()
    ledger_before = InterfaceLedger.in_dir(tmp_path / "state-leaf1").load()
    changed = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS[:1], area="0.0.0.1", maximum_paths=4)
    refusing = RefusingVtysh(prefix=node.enter())
    with pytest.raises(ApplyFailed) as info:
        apply_underlay(load(changed), drivers(node, tmp_path, refusing))
    message = str(info.value)
    assert message.startswith("FRR verify failed: FRR's running configuration still differs: ")
    assert "interface lo: `ip ospf area 0.0.0.1` is missing" in message
    assert "`ip ospf area 0.0.0.1`: Must remove previous area config before changing ospf area" in message
    assert message.endswith("rolled back to the previous running configuration")
    assert info.value.rollback_error is None
    assert refusing.calls == ["running", "check", "configure", "running", "configure"]
    assert node.vtysh().running_config() == before  # maximum-paths and eth2's removal were undone
    assert InterfaceLedger.in_dir(tmp_path / "state-leaf1").load() == ledger_before


def test_refused_line_the_configuration_does_not_need_is_reported(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)), drivers(node, tmp_path))
    changed = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS, maximum_paths=4)
    result = apply_underlay(load(changed), drivers(node, tmp_path, JunkVtysh(prefix=node.enter())))
    assert result.changed and not owned_delta(node, changed)
    assert [m.line for m in result.messages] == ["ip ospf area 0.0.0.9"]
    assert "Must remove previous area config" in result.messages[0].message


def test_verify_failure_rolls_back(frr_node: MakeNode, tmp_path: Path) -> None:
    node = leaf(frr_node)
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)), drivers(node, tmp_path))
    before = node.vtysh().running_config()
    changed = intent_file(tmp_path, "leaf1", "198.18.0.11", [("eth1", "198.18.1.0/31", 20), LINKS[1]], maximum_paths=4)
    with pytest.raises(ApplyFailed) as info:
        apply_underlay(load(changed), drivers(node, tmp_path, LosingVtysh(prefix=node.enter())))
    assert isinstance(info.value.cause, NotApplied)
    assert "FRR verify failed" in str(info.value) and "`ip ospf cost 20` is missing (FRR has `ip ospf cost 10`)" in str(
        info.value
    )
    assert node.vtysh().running_config() == before  # maximum-paths 4 went in, and was taken out again


def test_daemon_down_is_refused_before_any_change(frr_node: MakeNode, tmp_path: Path) -> None:
    """With ospfd down, FRR shows no OSPF lines and drops new ones with exit 0: tor-agent must notice."""
    node = leaf(frr_node)
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)), drivers(node, tmp_path))
    watchfrr, ospfd = (node.run("cat", f"/run/frr/{d}.pid").stdout.strip() for d in ("watchfrr", "ospfd"))
    node.run("kill", "-KILL", watchfrr, ospfd, pid_ns=True)  # without watchfrr, ospfd stays down
    wait_until(lambda: "ospfd" not in node.vtysh().running().daemons, 5, what="ospfd gone")
    recording = RecordingVtysh(prefix=node.enter())
    changed = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS, maximum_paths=4)
    with pytest.raises(DaemonsDown, match="ospfd"):
        apply_underlay(load(changed), drivers(node, tmp_path, recording))
    assert recording.calls == ["running"]


class NoLinks:
    """The engine's links driver and kernel reader with nothing to do (the test's FRR node has the links)."""

    def macs(self) -> dict[str, str]:
        return {}

    def routes(self) -> tuple[()]:
        return ()

    def read(self) -> KernelState:
        return KernelState({}, {}, None)

    def plan(self, spec: LinksSpec, state: KernelState) -> LinksPlan:
        return LinksPlan(spec)

    def apply(self, plan: LinksPlan) -> LinkResult:
        return LinkResult()


def test_cli_reports_a_failed_apply_with_exit_1(
    frr_node: MakeNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    apply_underlay(load(intent), drivers(node, tmp_path))
    changed = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS, area="0.0.0.2")
    failing = drivers(node, tmp_path, RefusingVtysh(prefix=node.enter()))
    # In this process, on the host: FRR is the node's (refusing), the kernel links stage has nothing to do and
    # the engine lock is in tmp_path; nothing of the host is read or written.
    drivers_ = Drivers(failing, NoLinks(), OvsRows(), OvsRouteTable(), NoLinks())
    monkeypatch.setattr(reconcile_drivers, "switch_drivers", lambda state_dir: drivers_)
    locked = functools.partial(Engine, lock=EngineLock(tmp_path / "engine.lock"))
    monkeypatch.setattr(reconcile_engine, "Engine", locked)
    argv = ["apply", "--control-socket", str(tmp_path / "no-agent.sock"), "--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(main, [*argv, str(changed)])
    assert result.exit_code == 1
    assert "tor-agent: FRR verify failed" in result.output and "rolled back" in result.output
    assert "Traceback" not in result.output


def test_apply_and_diff_json(frr_node: MakeNode, tmp_path: Path) -> None:
    import json

    node = leaf(frr_node)
    intent = intent_file(tmp_path, "leaf1", "198.18.0.11", LINKS)
    applied = json.loads(cli(node, tmp_path, "apply", "--json", str(intent)).stdout)
    assert applied["changed"] is True and applied["notes"] == [] and len(applied["changes"]) > 10
    again = json.loads(cli(node, tmp_path, "apply", "--json", str(intent)).stdout)
    assert (again["changed"], again["changes"]) == (False, [])
    vty(node, "router ospf", "maximum-paths 2")
    diff = json.loads(cli(node, tmp_path, "diff", "--json", str(intent)).stdout)
    assert diff["in_sync"] is False
    assert diff["changes"] == [
        {"context": ["router ospf"], "op": "replace", "line": "maximum-paths 8", "old": "maximum-paths 2"}
    ]
    assert diff["commands"] == "router ospf\n maximum-paths 8\nexit\n"


# --- protocol layer --------------------------------------------------------------------------


def _neighbours(node: FrrNode) -> dict[str, dict[str, Any]]:
    """OSPF neighbours by interface: state, state-change counter, uptime (ms)."""
    detail = node.show_json("show ip ospf neighbor detail json")["neighbors"]
    brief = node.show_json("show ip ospf neighbor json")["neighbors"]
    uptime = {n["ifaceName"].split(":")[0]: n["upTimeInMsec"] for ns in brief.values() for n in ns}
    return {
        n["ifaceName"]: {"state": n["nbrState"], "changes": n["stateChangeCounter"], "up_ms": uptime[n["ifaceName"]]}
        for ns in detail.values()
        for n in ns
    }


def _full(node: FrrNode, interfaces: Sequence[str]) -> bool:
    found = _neighbours(node)
    return all(found.get(i, {}).get("state") == "Full/-" for i in interfaces)


def test_unchanged_interface_keeps_its_adjacency(frr_node: MakeNode, tmp_path: Path) -> None:
    a, b = frr_node("spine1"), frr_node("leaf1")
    link(a, "eth1", "198.18.1.0/31", b, "eth1", "198.18.1.1/31")
    link(a, "eth2", "198.18.1.2/31", b, "eth2", "198.18.1.3/31")
    a_links: list[Link] = [("eth1", "198.18.1.0/31", 10), ("eth2", "198.18.1.2/31", 10)]
    b_links: list[Link] = [("eth1", "198.18.1.1/31", 10), ("eth2", "198.18.1.3/31", 10)]
    apply_underlay(load(intent_file(tmp_path, "spine1", "198.18.0.1", a_links)), drivers(a, tmp_path))
    apply_underlay(load(intent_file(tmp_path, "leaf1", "198.18.0.11", b_links)), drivers(b, tmp_path))
    for node in (a, b):
        wait_until(lambda node=node: _full(node, ["eth1", "eth2"]), 20, what=f"OSPF Full on {node.name}")
    before = {node.name: _neighbours(node)["eth1"] for node in (a, b)}

    # Another interface's cost, and the OSPF instance's maximum-paths.
    changed = [("eth1", "198.18.1.0/31", 10), ("eth2", "198.18.1.2/31", 20)]
    apply_underlay(load(intent_file(tmp_path, "spine1", "198.18.0.1", changed, maximum_paths=4)), drivers(a, tmp_path))
    wait_until(lambda: a.show_json("show ip ospf interface eth2 json")["interfaces"]["eth2"]["cost"] == 20, 5)
    _assert_not_reset(before, {node.name: _neighbours(node)["eth1"] for node in (a, b)})

    # Another interface leaves the intent: its adjacency goes (the check above would see a reset)...
    apply_underlay(
        load(intent_file(tmp_path, "spine1", "198.18.0.1", changed[:1], maximum_paths=4)), drivers(a, tmp_path)
    )
    wait_until(lambda: "eth2" not in _neighbours(b), 10, what="leaf1 losing its eth2 neighbour")
    # ... and eth1's stays as it was.
    _assert_not_reset(before, {node.name: _neighbours(node)["eth1"] for node in (a, b)})


def _assert_not_reset(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> None:
    for name, old in before.items():
        new = after[name]
        assert new["state"] == "Full/-" and new["changes"] == old["changes"], (name, old, new)
        assert new["up_ms"] > old["up_ms"], (name, old, new)
