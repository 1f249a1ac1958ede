"""`verify --fabric`: fabric.yaml read back (tor_agent.fabric.planned) and the live LSDB compared with it
(tor_agent.health.fabric_live), over FRR 8.4.4's `show ip ospf database router json` recorded from the lab
(data/fabric-live/, tests/e2e/record_fabric_samples.py: healthy, and with two cables swapped, numbered and
unnumbered) and over LSDBs built in FRR's layout from a plan and then damaged one way at a time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tor_agent.cli import health as health_cli
from tor_agent.cli import main
from tor_agent.errors import ConfigError
from tor_agent.fabric import read_settings, read_topology, render_fabric
from tor_agent.fabric.planned import FabricView, parse_view, read_view
from tor_agent.frr.vtysh import VtyshError
from tor_agent.health.fabric_live import FabricReport, adjacencies, compare, parse_router_links
from tor_agent.health.lsdb import MAX_METRIC, P2P

REPO = Path(__file__).resolve().parents[2]
LIVE = Path(__file__).resolve().parent / "data" / "fabric-live"
MISCABLING = REPO / "tests" / "e2e" / "data" / "miscabling"
GOLDEN = REPO / "tests" / "golden-fabric"
SWAPPED = ["link spine01:eth1 -- leaf01:eth49", "link spine02:eth3 -- leaf03:eth50"]


def recorded(variant: str, moment: str) -> Any:
    return json.loads((LIVE / variant / f"lsdb-{moment}.json").read_text())


def view_of(variant: str) -> FabricView:
    return read_view(LIVE / variant / "fabric.yaml")


def report(view: FabricView, lsdb: Any) -> FabricReport:
    return compare(view, parse_router_links(lsdb))


def kinds(r: FabricReport) -> list[tuple[str, str]]:
    return [(f.kind, f.subject) for f in r.findings]


# --- an LSDB built from the plan, in FRR 8.4's layout ----------------------------------------------------


def p2p(neighbour: str, address: str, metric: int) -> dict[str, Any]:
    return {"linkType": P2P, "neighborRouterId": neighbour, "routerInterfaceAddress": address, "tos0Metric": metric}


def stub(network: str, mask: str, metric: int = 10) -> dict[str, Any]:
    return {"linkType": "Stub Network", "networkAddress": network, "networkMask": mask, "tos0Metric": metric}


def planned_lsdb(view: FabricView, default_cost: int = 10) -> dict[str, Any]:
    """The LSDB the plan should give: every link up with its costs (FRR's layout, as recorded)."""
    links: dict[str, list[dict[str, Any]]] = {}
    for node in view.nodes:
        links[str(node.router_id)] = [stub(str(node.router_id), "255.255.255.255", 0)]
    rid = {n.name: n.router_id for n in view.nodes}
    for i, link in enumerate(view.links):
        for here, there in ((link.spine, link.leaf), (link.leaf, link.spine)):
            mine = links[str(rid[here.node])]
            address = str(here.address.ip) if here.address else f"0.0.0.{i + 3}"
            mine.append(p2p(str(rid[there.node]), address, here.cost or default_cost))
            if here.address is not None:
                mine.append(stub(str(here.address.network.network_address), str(here.address.netmask)))
    lsas = [
        {"advertisingRouter": r, "routerLinks": {f"link{i}": lk for i, lk in enumerate(ls)}} for r, ls in links.items()
    ]
    return {"routerLinkStates": {"areas": {"0.0.0.0": lsas}}}


def lsa(lsdb: dict[str, Any], router: str) -> dict[str, Any]:
    return next(x for x in lsdb["routerLinkStates"]["areas"]["0.0.0.0"] if x["advertisingRouter"] == router)


def edit_links(
    lsdb: dict[str, Any], router: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> None:
    entry = lsa(lsdb, router)
    entry["routerLinks"] = {f"link{i}": lk for i, lk in enumerate(change(list(entry["routerLinks"].values())))}


def drop_p2p(lsdb: dict[str, Any], router: str, neighbour: str) -> None:
    edit_links(lsdb, router, lambda ls: [lk for lk in ls if lk.get("neighborRouterId") != neighbour])


NUMBERED = view_of("numbered")
SPINE01, SPINE02 = "198.18.255.1", "198.18.255.2"
LEAF01, LEAF02, LEAF03 = "198.18.0.11", "198.18.0.12", "198.18.0.13"


# --- fabric.yaml -----------------------------------------------------------------------------------------


def test_fabric_yaml_reads_back() -> None:
    v = NUMBERED
    assert (v.fabric, v.node, len(v.nodes), len(v.links)) == ("dc1", "spine02", 5, 6)
    assert [str(lk) for lk in v.links][:2] == ["spine01:eth1 -- leaf01:eth49", "spine01:eth2 -- leaf02:eth49"]
    first = v.links[0]
    assert (str(first.spine.address), str(first.leaf.address), first.spine.cost, first.mtu) == (
        "198.18.1.0/31",
        "198.18.1.1/31",
        10,
        9500,
    )
    assert [u.neighbour.node for u in v.uplinks] == ["leaf01", "leaf02", "leaf03"]
    unnumbered = view_of("unnumbered").links[0]
    assert unnumbered.spine.unnumbered and unnumbered.spine.address is None and not unnumbered.numbered


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir()))
def test_every_rendered_fabric_yaml_reads_back_and_matches_its_own_lsdb(case: str) -> None:
    for path in sorted((GOLDEN / case / "expected").glob("*/fabric.yaml")):
        view = read_view(path)
        r = report(view, planned_lsdb(view))
        assert r.ok, (path, r.findings)
        assert r.matched == r.links == len(view.links)


def damaged(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = yaml.safe_load((LIVE / "numbered" / "fabric.yaml").read_text())
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        (lambda d: d["links"][3]["leaf"].update(address="198.18.1.256/31"), "links[3].leaf.address", "198.18.1.256"),
        (lambda d: d["links"][0]["spine"].update(node="spine09"), "links[0].spine.node", "not a spine among nodes"),
        (lambda d: d["links"][0].update(speed=10), "links[0].speed", "unknown key"),
        (lambda d: d["nodes"][1].update(router_id="198.18.255.1"), "nodes[1].router_id", "already the router ID"),
        (lambda d: d["nodes"][1].update(role="core"), "nodes[1].role", "not supported"),
        (lambda d: d.update(version=2), "version", "not supported"),
        (lambda d: d.pop("nodes"), "nodes", "is required"),
        (lambda d: d["links"][2]["spine"].update(cost=0), "links[2].spine.cost", "out of range"),
    ],
)
def test_a_damaged_fabric_yaml_is_refused_naming_the_path(change: Callable[[Any], None], path: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_view(damaged(change), "fabric.yaml")
    assert any(p.path == path and says in p.message for p in e.value.problems), e.value.problems


def test_a_file_that_is_not_yaml_or_too_big_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "fabric.yaml"
    bad.write_text("nodes: [\n")
    with pytest.raises(ConfigError):
        read_view(bad)
    with pytest.raises(ConfigError, match="no such file"):
        read_view(tmp_path / "missing.yaml")


# --- the recorded fabric -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["numbered", "unnumbered"])
def test_the_healthy_lab_is_as_planned(variant: str) -> None:
    r = report(view_of(variant), recorded(variant, "healthy"))
    assert r.ok and r.notes == ()
    assert (r.routers, r.links, r.matched, r.leaf_pairs) == (5, 6, 6, 3)
    assert r.lines("spine02") == [
        "spine02: fabric dc1 as planned: 5 routers, 6/6 links, ECMP as planned between 3 leaf pair(s)"
    ]


def test_two_swapped_numbered_cables_are_two_missing_links_and_fewer_paths() -> None:
    r = report(NUMBERED, recorded("numbered", "swapped"))
    assert kinds(r) == [
        ("missing", SWAPPED[0]),
        ("missing", SWAPPED[1]),
        ("ecmp", "ECMP leaf01"),
        ("ecmp", "ECMP leaf03"),
    ]
    assert r.findings[0].message == (
        "no adjacency, though both ends advertise 198.18.1.0/31: the ports are up and addressed but do not reach "
        "each other (cabled to other ports?)"
    )
    assert r.findings[2].message == "1 of 2 planned equal-cost path(s) to leaf02, leaf03"
    assert r.findings[3].message == "1 of 2 planned equal-cost path(s) to leaf02"


def test_two_swapped_unnumbered_cables_are_two_missing_links() -> None:
    r = report(view_of("unnumbered"), recorded("unnumbered", "swapped"))
    assert kinds(r)[:2] == [("missing", SWAPPED[0]), ("missing", SWAPPED[1])]
    assert r.findings[0].message == "no adjacency between the two switches"


def test_the_recorded_lsdb_pairs_unnumbered_links_by_router() -> None:
    routers = parse_router_links(recorded("unnumbered", "healthy"))
    pairs = adjacencies(routers)
    assert len(pairs) == 6 and all(a.a.unnumbered and a.b.unnumbered for a in pairs)
    assert routers[IPv4Address(LEAF01)].links[0].where().startswith("unnumbered (ifindex ")


# --- one fault at a time -------------------------------------------------------------------------------


def test_the_built_lsdb_is_the_recorded_one_as_far_as_the_comparison_goes() -> None:
    built, live = parse_router_links(planned_lsdb(NUMBERED)), parse_router_links(recorded("numbered", "healthy"))
    assert {r: sorted(lsa.links, key=str) for r, lsa in built.items()} == {
        r: sorted(lsa.links, key=str) for r, lsa in live.items()
    }
    assert {r: sorted(lsa.stubs) for r, lsa in built.items()} == {r: sorted(lsa.stubs) for r, lsa in live.items()}


def test_a_link_that_is_down_at_one_end() -> None:
    lsdb = planned_lsdb(NUMBERED)
    drop_p2p(lsdb, LEAF02, SPINE02)
    drop_p2p(lsdb, SPINE02, LEAF02)
    edit_links(lsdb, LEAF02, lambda ls: [lk for lk in ls if lk.get("networkAddress") != "198.18.1.8"])
    r = report(NUMBERED, lsdb)
    assert kinds(r)[0] == ("missing", "link spine02:eth2 -- leaf02:eth50")
    assert r.findings[0].message == (
        "no adjacency: leaf02 does not advertise 198.18.1.8/31 (its eth50 is down or not in OSPF)"
    )
    assert kinds(r)[1:] == [("ecmp", "ECMP leaf02")]


def test_an_extra_adjacency() -> None:
    lsdb = planned_lsdb(NUMBERED)
    edit_links(lsdb, SPINE01, lambda ls: [*ls, p2p(LEAF02, "198.18.9.0", 10)])
    edit_links(lsdb, LEAF02, lambda ls: [*ls, p2p(SPINE01, "198.18.9.1", 10)])
    r = report(NUMBERED, lsdb)
    assert kinds(r) == [("extra", "adjacency spine01 -- leaf02")]
    assert r.findings[0].message == "over 198.18.9.0 -- 198.18.9.1 (metrics 10/10) is not in the plan"


def test_the_right_switches_over_the_wrong_ports() -> None:
    """spine01 and leaf02 adjacent over the addresses planned for spine01 -- leaf03 (intents edited by hand)."""
    lsdb = planned_lsdb(NUMBERED)
    for router, neighbour in ((SPINE01, LEAF02), (LEAF02, SPINE01), (SPINE01, LEAF03), (LEAF03, SPINE01)):
        drop_p2p(lsdb, router, neighbour)
    edit_links(lsdb, SPINE01, lambda ls: [*ls, p2p(LEAF02, "198.18.1.4", 10)])
    edit_links(lsdb, LEAF02, lambda ls: [*ls, p2p(SPINE01, "198.18.1.5", 10)])
    r = report(NUMBERED, lsdb)
    assert [f.kind for f in r.findings if f.kind != "ecmp"] == ["wrong", "missing"]
    wrong = r.findings[0]
    assert wrong.subject == "link spine01:eth2 -- leaf02:eth49"
    assert wrong.message == (
        "spine01 and leaf02 are adjacent over 198.18.1.4 -- 198.18.1.5 instead (planned for link spine01:eth3 -- "
        "leaf03:eth49): another pair of ports"
    )


def test_a_planned_port_adjacent_to_another_switch() -> None:
    """spine01's eth1 address talks to leaf03 (a hand-edited leaf03 on the same /31)."""
    lsdb = planned_lsdb(NUMBERED)
    drop_p2p(lsdb, SPINE01, LEAF01)
    drop_p2p(lsdb, LEAF01, SPINE01)
    edit_links(lsdb, SPINE01, lambda ls: [*ls, p2p(LEAF03, "198.18.1.0", 10)])
    edit_links(lsdb, LEAF03, lambda ls: [*ls, p2p(SPINE01, "198.18.1.1", 10)])
    r = report(NUMBERED, lsdb)
    assert r.findings[0].kind == "wrong" and r.findings[0].subject == SWAPPED[0]
    assert r.findings[0].message == "spine01's eth1 (198.18.1.0) is adjacent to leaf03 (198.18.1.1) instead of leaf01"
    assert "extra" not in [f.kind for f in r.findings]


def test_unnumbered_cables_to_the_wrong_spine_are_named() -> None:
    view = view_of("unnumbered")
    lsdb = planned_lsdb(view)
    for router, neighbour in ((SPINE01, LEAF01), (LEAF01, SPINE01)):
        drop_p2p(lsdb, router, neighbour)
    edit_links(lsdb, SPINE02, lambda ls: [*ls, p2p(LEAF01, "0.0.0.9", 10)])
    edit_links(lsdb, LEAF01, lambda ls: [*ls, p2p(SPINE02, "0.0.0.9", 10)])
    r = report(view, lsdb)
    assert kinds(r)[0] == ("wrong", SWAPPED[0])
    assert r.findings[0].message == "leaf01 is adjacent to spine02 over an unnumbered link instead of spine01"


def test_an_unknown_and_an_absent_router() -> None:
    lsdb = planned_lsdb(NUMBERED)
    lsa(lsdb, LEAF03)["advertisingRouter"] = "198.18.0.99"
    for spine in (SPINE01, SPINE02):
        edit_links(
            lsdb,
            spine,
            lambda ls: [
                dict(lk, neighborRouterId="198.18.0.99") if lk.get("neighborRouterId") == LEAF03 else lk for lk in ls
            ],
        )
    r = report(NUMBERED, lsdb)
    assert kinds(r) == [("absent", "leaf leaf03 (198.18.0.13)"), ("unknown", "router 198.18.0.99")]
    assert r.findings[0].message.endswith("its 2 planned link(s) are missing")
    assert r.findings[1].message.startswith("is not in the plan (adjacent to spine01, spine02)")


def test_a_cost_other_than_planned() -> None:
    lsdb = planned_lsdb(NUMBERED)
    edit_links(
        lsdb, LEAF02, lambda ls: [dict(lk, tos0Metric=20) if lk.get("neighborRouterId") == SPINE01 else lk for lk in ls]
    )
    r = report(NUMBERED, lsdb)
    assert kinds(r)[0] == ("cost", "link spine01:eth2 -- leaf02:eth49")
    assert r.findings[0].message == "leaf02 advertises cost 20 on eth49, the plan 10"
    assert ("ecmp", "ECMP leaf02") in kinds(r)  # leaf02 now reaches leaf01 and leaf03 over spine02 only


def test_a_drained_spine_is_a_note_not_a_fault() -> None:
    lsdb = planned_lsdb(NUMBERED)
    edit_links(
        lsdb, SPINE02, lambda ls: [dict(lk, tos0Metric=MAX_METRIC) if lk["linkType"] == P2P else lk for lk in ls]
    )
    r = report(NUMBERED, lsdb)
    assert r.ok and r.notes == ("spine02 (198.18.255.2) is drained (max-metric): paths avoid it by plan",)
    assert r.lines("leaf01")[-1] == "  note: spine02 (198.18.255.2) is drained (max-metric): paths avoid it by plan"


def test_costs_left_to_frr_are_not_checked_and_count_as_equal() -> None:
    doc = yaml.safe_load((LIVE / "numbered" / "fabric.yaml").read_text())
    for link in doc["links"]:
        for end in ("spine", "leaf"):
            link[end].pop("cost")
    view = parse_view(doc)
    assert report(view, planned_lsdb(view, default_cost=100)).ok
    lsdb = planned_lsdb(view, default_cost=100)
    drop_p2p(lsdb, LEAF01, SPINE02)
    drop_p2p(lsdb, SPINE02, LEAF01)
    assert ("ecmp", "ECMP leaf01") in kinds(report(view, lsdb))


def test_ecmp_findings_name_each_leaf_once_per_count() -> None:
    """A 4x16 fabric losing one leaf's link: one missing link and one ECMP line, not 15."""
    topo, f = read_topology(REPO / "labs" / "containerlab" / "fabric-3x4.clab.yml")
    settings, g = read_settings(REPO / "labs" / "containerlab" / "fabric-3x4.settings.yml")
    assert topo is not None and settings is not None, (f, g)
    rendering, found = render_fabric(topo, settings)
    assert rendering is not None, found
    view = parse_view(yaml.safe_load(rendering.nodes["spine1"].texts["fabric.yaml"]))
    lsdb = planned_lsdb(view)
    rid = {n.name: str(n.router_id) for n in view.nodes}
    leaf2, spine3 = rid["leaf2"], rid["spine3"]
    drop_p2p(lsdb, leaf2, spine3)
    drop_p2p(lsdb, spine3, leaf2)
    r = report(view, lsdb)
    assert [f.kind for f in r.findings] == ["missing", "ecmp"]
    assert r.findings[1].subject == "ECMP leaf2"
    assert r.findings[1].message == "2 of 3 planned equal-cost path(s) to leaf1, leaf3, leaf4"


def test_frr_output_of_another_shape_is_a_read_error() -> None:
    from tor_agent.health.frr_state import FrrOutputError

    with pytest.raises(FrrOutputError, match="show ip ospf database router json"):
        parse_router_links({"routerLinkStates": {"areas": {"0.0.0.0": [{"routerLinks": {}}]}}})


def test_json_report() -> None:
    doc = report(NUMBERED, recorded("numbered", "swapped")).as_json()
    assert doc["ok"] is False and doc["fabric"] == "dc1" and doc["matched"] == 4
    assert doc["findings"][0] == {
        "kind": "missing",
        "subject": SWAPPED[0],
        "message": report(NUMBERED, recorded("numbered", "swapped")).findings[0].message,
    }


# --- the command ---------------------------------------------------------------------------------------


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def run(monkeypatch: pytest.MonkeyPatch, lsdb: Any, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(health_cli, "read_router_links", lambda: parse_router_links(lsdb))
    result = runner().invoke(main, ["verify", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """A switch's /etc/tor-agent: leaf01's intent and the fabric.yaml rendered with it."""
    shutil.copy(LIVE / "numbered" / "leaf01" / "agent.yaml", tmp_path / "agent.yaml")
    shutil.copy(LIVE / "numbered" / "fabric.yaml", tmp_path / "fabric.yaml")
    return tmp_path


def test_verify_fabric_as_planned_exits_0(monkeypatch: pytest.MonkeyPatch, etc: Path) -> None:
    code, out, err = run(monkeypatch, recorded("numbered", "healthy"), "--fabric", str(etc / "agent.yaml"))
    assert (code, err) == (0, "")
    assert out == "leaf01: fabric dc1 as planned: 5 routers, 6/6 links, ECMP as planned between 3 leaf pair(s)\n"


def test_verify_fabric_lists_one_line_per_finding_and_exits_1(monkeypatch: pytest.MonkeyPatch, etc: Path) -> None:
    code, out, _ = run(monkeypatch, recorded("numbered", "swapped"), "--fabric", str(etc / "agent.yaml"))
    lines = out.splitlines()
    assert code == 1 and lines[0] == "leaf01: fabric dc1 differs from the plan (4):"
    assert [line.split(":")[0].strip() for line in lines[1:3]] == ["link spine01", "link spine02"]
    assert len(lines) == 5


def test_verify_fabric_json(monkeypatch: pytest.MonkeyPatch, etc: Path) -> None:
    code, out, _ = run(monkeypatch, recorded("numbered", "swapped"), "--fabric", "--json", str(etc / "agent.yaml"))
    doc = json.loads(out)
    assert code == 1 and doc["hostname"] == "leaf01" and doc["plan"] == str(etc / "fabric.yaml")
    assert [f["subject"] for f in doc["findings"] if f["kind"] == "missing"] == SWAPPED


def test_verify_fabric_file_elsewhere(monkeypatch: pytest.MonkeyPatch, etc: Path, tmp_path: Path) -> None:
    moved = tmp_path / "plans" / "dc1.yaml"
    moved.parent.mkdir()
    (etc / "fabric.yaml").rename(moved)
    lsdb = recorded("numbered", "healthy")
    assert run(monkeypatch, lsdb, "--fabric", str(etc / "agent.yaml"))[0] == 2
    assert run(monkeypatch, lsdb, "--fabric", "--fabric-file", str(moved), str(etc / "agent.yaml"))[0] == 0


def test_verify_fabric_bad_input_exits_2(monkeypatch: pytest.MonkeyPatch, etc: Path) -> None:
    lsdb = recorded("numbered", "healthy")
    (etc / "fabric.yaml").write_text((etc / "fabric.yaml").read_text().replace("cost: 10", "cost: -1", 1))
    code, out, err = run(monkeypatch, lsdb, "--fabric", str(etc / "agent.yaml"))
    assert (code, out) == (2, "") and f"{etc / 'fabric.yaml'}: links[0].spine.cost: -1 is out of range" in err
    (etc / "fabric.yaml").unlink()
    code, _, err = run(monkeypatch, lsdb, "--fabric", str(etc / "agent.yaml"))
    assert code == 2 and "fabric.yaml" in err and "no such file" in err
    code, _, err = run(monkeypatch, lsdb, "--fabric", "--only", "underlay", str(etc / "agent.yaml"))
    assert code == 2 and "--only does not apply with --fabric" in err
    code, _, err = run(monkeypatch, lsdb, "--fabric-file", str(etc / "x.yaml"), str(etc / "agent.yaml"))
    assert code == 2 and "--fabric-file is only read with --fabric" in err


def test_verify_fabric_when_ospfd_does_not_answer(monkeypatch: pytest.MonkeyPatch, etc: Path) -> None:
    def broken() -> Any:
        raise VtyshError("show ip ospf database router json", "exit 1: Exiting: failed to connect to any daemons.")

    monkeypatch.setattr(health_cli, "read_router_links", broken)
    result = runner().invoke(main, ["verify", "--fabric", str(etc / "agent.yaml")])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].startswith("  tor-agent: cannot read the LSDB: ")


def test_the_miscabling_lab_s_configs_are_what_render_makes(tmp_path: Path) -> None:
    topo, f = read_topology(MISCABLING / "dc1.clab.yml")
    settings, g = read_settings(MISCABLING / "dc1.settings.yml")
    assert topo is not None and settings is not None, (f, g)
    rendering, found = render_fabric(topo, settings)
    assert rendering is not None, found
    for name, node in rendering.nodes.items():
        for rel, text in node.texts.items():
            have = (MISCABLING / "configs" / name / rel).read_text()
            assert have == text, (
                f"tests/e2e/data/miscabling/configs/{name}/{rel} is stale: run `tor-agent fabric render "
                "tests/e2e/data/miscabling/dc1.clab.yml --settings tests/e2e/data/miscabling/dc1.settings.yml "
                "--output-dir tests/e2e/data/miscabling/configs`"
            )


def test_recorded_plans_are_the_miscabling_lab_s() -> None:
    """The samples were recorded from that lab: its plan, as checked in, is the one they were compared with."""
    assert (LIVE / "numbered" / "fabric.yaml").read_text() == (
        MISCABLING / "configs" / "spine02" / "fabric.yaml"
    ).read_text()
