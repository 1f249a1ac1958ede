"""Underlay status and verify (tor_agent.health.underlay), pure, over FRR 8.4.4 output recorded from a real fabric.

The samples under data/health/<scenario>/ come from tests/health/record_samples.py: 2 spines, 2 leaves;
leaf1 numbered, leaf2 unnumbered; scenarios healthy, leaf1's eth2 down, leaf1's eth2 silently failing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from tor_agent.config import Intent, load_text
from tor_agent.health import Degraded, UnderlayState, collect, status, verify
from tor_agent.health.frr_state import BFD_PEERS, OSPF_NEIGHBORS, OSPF_ROUTES, ZEBRA_ROUTES, Nexthop
from tor_agent.health.lsdb import ROUTER_LSAS
from tor_agent.health.report import status_lines, verify_lines
from tor_agent.health.underlay import LayerRoute, UplinkStatus, _ecmp_interfaces
from tor_agent.net import KernelNexthop, KernelRoute

DATA = Path(__file__).resolve().parent / "data" / "health"
FILES = {
    OSPF_NEIGHBORS: "ospf-neighbors.json",
    BFD_PEERS: "bfd-peers.json",
    OSPF_ROUTES: "ospf-routes.json",
    ZEBRA_ROUTES: "zebra-routes.json",
    ROUTER_LSAS: "router-lsas.json",
}
VTEP = IPv4Address("198.18.0.12")


class Recorded:
    """A ShowJson answering from a scenario's files (optionally rewritten, e.g. to rename interfaces)."""

    def __init__(self, scenario: str, rewrite: Callable[[str], str] = lambda t: t) -> None:
        self.dir = DATA / scenario
        self.rewrite = rewrite

    def show_json(self, command: str) -> Any:
        return json.loads(self.rewrite((self.dir / FILES[command]).read_text()))

    def kernel_routes(self) -> tuple[KernelRoute, ...]:
        doc = json.loads(self.rewrite((self.dir / "kernel-routes.json").read_text()))
        return tuple(
            KernelRoute(
                prefix=IPv4Network(r["prefix"]),
                protocol=r["protocol"],
                type=r["type"],
                metric=r["metric"],
                nexthops=tuple(
                    KernelNexthop(IPv4Address(nh["gateway"]) if nh["gateway"] else None, nh["ifname"], nh["live"])
                    for nh in r["nexthops"]
                ),
            )
            for r in doc
        )

    def intent(self) -> Intent:
        return load_text(self.rewrite((self.dir / "intent.yaml").read_text()), str(self.dir / "intent.yaml"))


def load(scenario: str, rewrite: Callable[[str], str] = lambda t: t) -> tuple[UnderlayState, Intent]:
    recorded = Recorded(scenario, rewrite)
    return collect(recorded, recorded.kernel_routes), recorded.intent()


def messages(problems: list[Degraded]) -> list[str]:
    return [str(p) for p in problems]


def replace_kernel_route(state: UnderlayState, prefix: str, route: KernelRoute | None) -> UnderlayState:
    kept = tuple(r for r in state.kernel_routes if r.prefix != IPv4Network(prefix))
    return dataclasses.replace(state, kernel_routes=kept + ((route,) if route is not None else ()))


def test_a_drained_spine_is_planned_not_degraded() -> None:
    """spine2 advertises max-metric: leaf1 routes over eth1 only, and says why instead of failing."""
    state, intent = load("leaf1-spine2-drained")
    assert state.drained == {IPv4Address("198.18.0.2")}
    st = status(state, intent)
    assert [u.drained for u in st.uplinks] == [False, True] and st.expected == {"eth1"}
    assert verify(state, intent) == []
    (line, note) = verify_lines("leaf1", [], st)
    assert line.startswith("leaf1: underlay healthy") and "198.18.0.2 is drained (max-metric)" in note
    assert any("198.18.0.2 via 198.18.1.2 Full" in s and "drained" in s for s in status_lines(st, []))
    # the same routes without the LSDB's word: a reduced ECMP width, as after a failure
    unexplained = messages(verify(dataclasses.replace(state, drained=frozenset()), intent))
    assert any("ECMP" in m and "expected 2" in m for m in unexplained), unexplained


@pytest.mark.parametrize("scenario", ["leaf1-healthy", "leaf2-healthy", "spine1-healthy"])
def test_healthy_fabric_verifies_clean(scenario: str) -> None:
    assert verify(*load(scenario)) == []


def test_leaf_status_joins_neighbours_bfd_and_three_layers() -> None:
    st = status(*load("leaf1-healthy"))
    rows = [(u.uplink.name, u.healthy, u.neighbor and u.neighbor.state, u.bfd and u.bfd.status) for u in st.uplinks]
    assert rows == [
        ("eth1", True, "Full/-", "up"),
        ("eth2", True, "Full/-", "up"),
    ]
    assert st.uplinks[0].neighbor is not None and st.uplinks[0].neighbor.router_id == IPv4Address("198.18.0.1")
    (vtep,) = st.vteps
    both = (Nexthop("eth1", IPv4Address("198.18.1.0")), Nexthop("eth2", IPv4Address("198.18.1.2")))
    assert vtep.address == VTEP and vtep.width == 2
    assert vtep.ospf == LayerRoute(IPv4Network("198.18.0.12/32"), both, "ospf")
    assert vtep.zebra == LayerRoute(IPv4Network("198.18.0.12/32"), both, "ospf")
    assert vtep.kernel == LayerRoute(IPv4Network("198.18.0.12/32"), both, "ospf")
    assert st.expected == st.configured == frozenset({"eth1", "eth2"})


def test_unnumbered_leaf_nexthops_are_the_spines_loopbacks() -> None:
    (vtep,) = status(*load("leaf2-healthy")).vteps
    assert vtep.address == IPv4Address("198.18.0.11")
    assert vtep.kernel is not None and {nh.gateway for nh in vtep.kernel.nexthops} == {
        IPv4Address("198.18.0.1"),
        IPv4Address("198.18.0.2"),
    }


def test_spine_checks_every_other_loopback_without_an_ecmp_width() -> None:
    st = status(*load("spine1-healthy"))
    assert [str(v.address) for v in st.vteps] == ["198.18.0.2", "198.18.0.11", "198.18.0.12"]
    assert st.expected is None and st.configured is None
    assert [v.width for v in st.vteps] == [2, 1, 1]  # the other spine via both leaves; each leaf directly


def test_link_down_names_the_uplink_and_the_reduced_ecmp_width() -> None:
    assert messages(verify(*load("leaf1-eth2-down"))) == [
        "underlay.uplinks[1] eth2: no OSPF neighbour on eth2",
        "ECMP: width reduced to 1 of 2 uplinks (eth2 down) for 1 VTEP(s): 198.18.0.12",
    ]


def test_silent_failure_leaves_a_neighbour_stuck_in_init() -> None:
    problems = verify(*load("leaf1-eth2-silent"))
    assert messages(problems) == [
        "underlay.uplinks[1] eth2: OSPF neighbour 198.18.0.2 (198.18.1.2) is Init/-, not Full",
        "ECMP: width reduced to 1 of 2 uplinks (eth2 down) for 1 VTEP(s): 198.18.0.12",
    ]
    assert [p.kind for p in problems] == ["uplink", "ecmp"]


def test_kernel_losing_an_ecmp_member_is_caught() -> None:
    """FRR 8.4.4 with kernel nexthop groups loses ECMP members after a flap (docs/design.md, fact 11): OSPF still
    has both."""
    state, intent = load("leaf1-healthy")
    one = KernelRoute(IPv4Network("198.18.0.12/32"), "ospf", (KernelNexthop(IPv4Address("198.18.1.0"), "eth1"),))
    assert messages(verify(replace_kernel_route(state, "198.18.0.12/32", one), intent)) == [
        "VTEP 198.18.0.12: kernel FIB [198.18.1.0 eth1] differs from OSPF [198.18.1.0 eth1, 198.18.1.2 eth2]"
    ]


def test_dead_kernel_nexthop_is_not_counted() -> None:
    state, intent = load("leaf1-healthy")
    hops = (KernelNexthop(IPv4Address("198.18.1.0"), "eth1"), KernelNexthop(IPv4Address("198.18.1.2"), "eth2", False))
    route = KernelRoute(IPv4Network("198.18.0.12/32"), "ospf", hops)
    state = replace_kernel_route(state, "198.18.0.12/32", route)
    assert status(state, intent).vteps[0].width == 1
    assert [p.kind for p in verify(state, intent)] == ["route"]


def test_kernel_nexthop_group_is_named_as_the_likely_cause() -> None:
    state, intent = load("leaf1-healthy")
    state = replace_kernel_route(state, "198.18.0.12/32", KernelRoute(IPv4Network("198.18.0.12/32"), "ospf", ()))
    (problem,) = verify(state, intent)
    assert "no zebra nexthop kernel enable" in problem.message


def test_missing_kernel_route_falls_back_to_the_covering_route_and_says_so() -> None:
    state, intent = load("leaf1-healthy")
    state = replace_kernel_route(state, "198.18.0.12/32", None)
    default = KernelRoute(IPv4Network("0.0.0.0/0"), "static", (KernelNexthop(IPv4Address("198.18.1.0"), "eth1"),))
    assert messages(verify(replace_kernel_route(state, "0.0.0.0/0", default), intent)) == [
        "VTEP 198.18.0.12: the kernel FIB uses 0.0.0.0/0 (static), not 198.18.0.12/32"
    ]
    assert messages(verify(state, intent)) == ["VTEP 198.18.0.12: no route in the kernel FIB"]


def test_zebra_disagreeing_with_ospf_is_caught() -> None:
    state, intent = load("leaf1-healthy")
    network = IPv4Network("198.18.0.12/32")
    zebra = dict(state.zebra_routes)
    zebra[network] = dataclasses.replace(zebra[network], nexthops=zebra[network].nexthops[:1])
    problems = verify(dataclasses.replace(state, zebra_routes=zebra), intent)
    assert messages(problems)[0] == (
        "VTEP 198.18.0.12: zebra FIB [198.18.1.0 eth1] differs from OSPF [198.18.1.0 eth1, 198.18.1.2 eth2]"
    )
    del zebra[network]
    assert messages(verify(dataclasses.replace(state, zebra_routes=zebra), intent))[0] == (
        "VTEP 198.18.0.12: zebra has no route"
    )


def test_bfd_down_under_a_full_adjacency_is_degraded() -> None:
    state, intent = load("leaf1-healthy")
    peers = tuple(dataclasses.replace(p, status="down", diagnostic="control detection time expired")
                  if p.ifname == "eth2" else p for p in state.bfd_peers)  # fmt: skip
    assert messages(verify(dataclasses.replace(state, bfd_peers=peers), intent)) == [
        "underlay.uplinks[1] eth2: BFD session with 198.18.1.2 is down (diagnostic: control detection time expired): "
        "a silent failure would take the dead interval to detect"
    ]
    no_bfd = dataclasses.replace(intent, underlay=dataclasses.replace(intent.underlay, ospf=dataclasses.replace(
        intent.underlay.ospf, bfd=None)))  # fmt: skip
    assert verify(dataclasses.replace(state, bfd_peers=()), no_bfd) == []


def test_static_peer_without_a_route_is_degraded() -> None:
    state, intent = load("leaf1-healthy")
    assert intent.overlay is not None
    tunnels = dataclasses.replace(intent.overlay.tunnels, peers=(VTEP, IPv4Address("198.18.0.13")))
    intent = dataclasses.replace(intent, overlay=dataclasses.replace(intent.overlay, tunnels=tunnels))
    assert messages(verify(state, intent)) == ["VTEP 198.18.0.13: no OSPF route"]


def test_netdev_leaf_looks_for_neighbours_on_the_uplink_bridges() -> None:
    def netdev(text: str) -> str:
        text = text.replace("datapath: system", "datapath: netdev")
        for name in ("eth1", "eth2"):  # OSPF and routes run on the bridges there; the intent names the ports
            text = text.replace(f'"{name}', f'"br-{name}').replace(f"dev {name}", f"dev br-{name}")
        return text

    state, intent = load("leaf1-healthy", netdev)
    st = status(state, intent)
    assert [(u.uplink.name, u.interface, u.healthy) for u in st.uplinks] == [
        ("eth1", "br-eth1", True),
        ("eth2", "br-eth2", True),
    ]
    assert verify(state, intent) == []
    plain_state, _ = load("leaf1-healthy")
    assert messages(verify(plain_state, intent))[:2] == [
        "underlay.uplinks[0] eth1 (br-eth1): no OSPF neighbour on br-eth1",
        "underlay.uplinks[1] eth2 (br-eth2): no OSPF neighbour on br-eth2",
    ]


def _uplinks(*costs: int | None) -> list[UplinkStatus]:
    _, intent = load("leaf1-healthy")
    base = intent.underlay.uplinks[0]
    return [
        UplinkStatus(f"underlay.uplinks[{i}]", dataclasses.replace(base, name=f"eth{i}", cost=c), f"eth{i}", None, None)
        for i, c in enumerate(costs)
    ]


def test_ecmp_width_follows_the_cheapest_configured_cost() -> None:
    assert _ecmp_interfaces(_uplinks(10, 10), 8) == {"eth0", "eth1"}
    assert _ecmp_interfaces(_uplinks(None, None), 8) == {"eth0", "eth1"}
    assert _ecmp_interfaces(_uplinks(10, 20, 10), 8) == {"eth0", "eth2"}
    assert _ecmp_interfaces(_uplinks(10, None), 8) is None  # auto-cost: unknown
    assert _ecmp_interfaces(_uplinks(10, 10, 10), 2) is None  # FRR picks which 2
    assert _ecmp_interfaces([], 8) == frozenset()


def test_status_json_is_plain_json() -> None:
    st = status(*load("leaf1-eth2-down"))
    doc = json.loads(json.dumps(st.as_json()))
    assert doc["hostname"] == "leaf1" and doc["role"] == "leaf"
    assert [(u["name"], u["healthy"]) for u in doc["uplinks"]] == [("eth1", True), ("eth2", False)]
    assert doc["uplinks"][0]["neighbor"]["state"] == "Full/-"
    assert doc["vteps"][0]["kernel"]["nexthops"] == [{"gateway": "198.18.1.0", "interface": "eth1"}]
    assert doc["ecmp"] == {"expected_interfaces": ["eth1"], "configured_interfaces": ["eth1", "eth2"]}
