"""Neighbour expectations: the intent's `underlay.uplinks[].neighbour`, lldpd's JSON, and the cabling check of
`verify` (tor_agent.health.neighbours), over samples recorded from the lab (tests/e2e/record_fabric_samples.py).

data/lldp/<json|json0>/ holds `lldpcli -f json|json0 show neighbors` from the same lab moments: leaf01 with two
neighbours, spine01 with three, leaf01 just after a cable was moved (its old neighbour still listed), leaf02
with one and with none. data/fabric-live/<numbered|unnumbered>/<node>/ holds each switch's intent, OSPF
neighbours and LLDP neighbours healthy and with two cables swapped (spine01:eth1 -- leaf01:eth49 and
spine02:eth3 -- leaf03:eth50 became spine01:eth1 -- leaf03:eth50 and spine02:eth3 -- leaf01:eth49).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tor_agent.cli import health as health_cli
from tor_agent.cli import main
from tor_agent.config import load, load_text
from tor_agent.config.schema import Intent, Neighbour
from tor_agent.errors import ConfigError
from tor_agent.health import UnderlayState, readers, status
from tor_agent.health.frr_state import BfdPeer, parse_ospf_neighbors
from tor_agent.health.neighbours import (
    Cabling,
    LldpNeighbour,
    LldpUnavailable,
    check_cabling,
    parse_lldp,
    same_system,
)
from tor_agent.health.underlay import UplinkStatus

DATA = Path(__file__).resolve().parent / "data"
LLDP = DATA / "lldp"
LIVE = DATA / "fabric-live"
SAMPLES = sorted(p.stem for p in (LLDP / "json0").glob("*.json"))


def lldp_sample(fmt: str, name: str) -> Any:
    return json.loads((LLDP / fmt / f"{name}.json").read_text())


def plain(neighbours: tuple[LldpNeighbour, ...]) -> list[tuple[Any, ...]]:
    """What both formats must agree on (the age may tick between the two recordings)."""
    return [(n.interface, n.system, n.chassis_id, n.port_id, n.port_id_type, n.port_descr) for n in neighbours]


def intent_of(variant: str, node: str) -> Intent:
    return load(LIVE / variant / node / "agent.yaml")


def state_of(variant: str, node: str, moment: str) -> UnderlayState:
    """The switch's OSPF neighbours as recorded; an up BFD session with each Full one (BFD is not the subject)."""
    doc = json.loads((LIVE / variant / node / f"ospf-neighbors-{moment}.json").read_text())
    neighbours = parse_ospf_neighbors(doc)
    bfd = tuple(BfdPeer(n.address, n.ifname, "up", 10, "ok") for n in neighbours if n.full)
    return UnderlayState(neighbours, bfd, {}, {}, ())


def uplinks_of(variant: str, node: str, moment: str) -> tuple[UplinkStatus, ...]:
    return status(state_of(variant, node, moment), intent_of(variant, node)).uplinks


def lldp_of(variant: str, node: str, moment: str) -> tuple[LldpNeighbour, ...]:
    return parse_lldp(json.loads((LIVE / variant / node / f"lldp-{moment}.json").read_text()))


def cabling(variant: str, node: str, moment: str) -> Cabling:
    return check_cabling(uplinks_of(variant, node, moment), lldp_of(variant, node, moment))


# --- lldpd's JSON ----------------------------------------------------------------------------------------


def test_samples_cover_every_shape() -> None:
    assert SAMPLES == ["leaf01-recabled", "leaf01-two", "leaf02-none", "leaf02-one", "spine01-three"]
    one = lldp_sample("json", "leaf02-one")["lldp"]["interface"]
    assert isinstance(one, dict)  # json: one interface is an object, not a list of one
    assert isinstance(lldp_sample("json", "leaf01-two")["lldp"]["interface"], list)


@pytest.mark.parametrize("name", SAMPLES)
def test_json_and_json0_read_the_same(name: str) -> None:
    assert plain(parse_lldp(lldp_sample("json", name))) == plain(parse_lldp(lldp_sample("json0", name)))


def test_two_neighbours_with_names_and_ports() -> None:
    found = parse_lldp(lldp_sample("json0", "leaf01-two"))
    assert [(n.interface, n.system, n.port, n.port_id_type) for n in found] == [
        ("eth49", "spine01", "eth1", "ifname"),
        ("eth50", "spine02", "eth1", "ifname"),
    ]
    assert all(n.age_s is not None and n.age_s >= 0 for n in found)


def test_spine_hears_every_leaf_on_its_port() -> None:
    found = parse_lldp(lldp_sample("json", "spine01-three"))
    assert [str(n) for n in found] == ["leaf01:eth49", "leaf02:eth49", "leaf03:eth49"]
    assert [n.interface for n in found] == ["eth1", "eth2", "eth3"]


def test_one_and_no_neighbour() -> None:
    for fmt in ("json", "json0"):
        assert [str(n) for n in parse_lldp(lldp_sample(fmt, "leaf02-one"))] == ["spine01:eth2"]
        assert parse_lldp(lldp_sample(fmt, "leaf02-none")) == ()


def test_a_recabled_port_lists_its_old_neighbour_too() -> None:
    eth49 = [n for n in parse_lldp(lldp_sample("json0", "leaf01-recabled")) if n.interface == "eth49"]
    assert sorted(str(n) for n in eth49) == ["spine01:eth1", "spine02:eth3"]
    old = next(n for n in eth49 if n.system == "spine01")
    new = next(n for n in eth49 if n.system == "spine02")
    assert new.age_s is not None and old.age_s is not None and new.age_s < old.age_s


def test_mac_port_ids_fall_back_to_the_port_description() -> None:
    doc = lldp_sample("json0", "leaf01-two")
    port = doc["lldp"][0]["interface"][0]["port"][0]
    port["id"] = [{"type": "mac", "value": "02:00:00:00:00:01"}]
    (first, _) = parse_lldp(doc)
    assert (first.port_id_type, first.port) == ("mac", "eth1")


def test_a_neighbour_without_a_system_name_is_named_by_its_chassis_id() -> None:
    doc = lldp_sample("json", "leaf02-one")
    body = doc["lldp"]["interface"]["eth49"]
    (name,) = body["chassis"]
    body["chassis"] = body["chassis"][name]  # json without a system name: {"id": {...}, ...}
    (found,) = parse_lldp(doc)
    assert found.system is None and found.chassis_id == body["chassis"]["id"]["value"]
    assert str(found) == f"{found.chassis_id}:eth2"


@pytest.mark.parametrize("doc", [None, [], "x", {"other": 1}])
def test_output_that_is_not_lldpcli_s_is_refused(doc: Any) -> None:
    with pytest.raises(LldpUnavailable, match="unexpected output"):
        parse_lldp(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"lldp": {"interface": "eth1"}},
        {"lldp": [{"interface": [{"name": "eth1"}]}]},
        {"lldp": {"interface": [{"eth1": {"chassis": [], "port": None, "age": 5}}]}},
    ],
)
def test_odd_shapes_are_read_without_a_traceback(doc: Any) -> None:
    for n in parse_lldp(doc):
        assert n.interface == "eth1" and n.system is None and n.port is None


def test_same_system_allows_the_domain() -> None:
    assert same_system("spine01", "spine01") and same_system("SPINE01.dc1.example.net", "spine01")
    assert same_system("spine01", "spine01.dc1.example.net")
    assert not same_system("spine011", "spine01") and not same_system(None, "spine01")


# --- the intent's field ----------------------------------------------------------------------------------


def test_rendered_intents_carry_the_expected_neighbours() -> None:
    (eth49, eth50) = intent_of("numbered", "leaf01").underlay.uplinks
    assert eth49.neighbour == Neighbour("spine01", IPv4Address("198.18.255.1"), "eth1")
    assert eth50.neighbour == Neighbour("spine02", IPv4Address("198.18.255.2"), "eth1")


@pytest.mark.parametrize(
    ("neighbour", "path", "says"),
    [
        ({"node": "spine_1", "router_id": "198.18.255.1", "port": "eth1"}, "neighbour.node", "not a valid hostname"),
        ({"node": "s1", "router_id": "224.0.0.5", "port": "eth1"}, "neighbour.router_id", "multicast"),
        ({"node": "s1", "router_id": "198.18.255.1", "port": "ethernet-1/49"}, "neighbour.port", "interface name"),
        ({"node": "s1", "router_id": "198.18.255.1"}, "neighbour.port", "is required"),
        ({"node": "s1", "router_id": "198.18.255.1", "port": "eth1", "ip": 1}, "neighbour.ip", "unknown key"),
        ("spine01:eth1", "neighbour", "must be a mapping"),
    ],
)
def test_a_bad_neighbour_is_refused_naming_its_field(neighbour: Any, path: str, says: str) -> None:
    doc = yaml.safe_load((LIVE / "numbered" / "leaf01" / "agent.yaml").read_text())
    doc["underlay"]["uplinks"][0]["neighbour"] = neighbour
    with pytest.raises(ConfigError) as e:
        load_text(yaml.safe_dump(doc))
    assert [(p.path, says in p.message) for p in e.value.problems] == [(f"underlay.uplinks[0].{path}", True)]


def test_without_neighbours_nothing_is_checked() -> None:
    intent = intent_of("numbered", "leaf01")
    bare = [dataclasses.replace(u, neighbour=None) for u in intent.underlay.uplinks]
    intent = dataclasses.replace(intent, underlay=dataclasses.replace(intent.underlay, uplinks=tuple(bare)))
    checked = check_cabling(status(state_of("numbered", "leaf01", "healthy"), intent).uplinks, None, "not asked")
    assert checked.uplinks == () and checked.problems() == []


# --- the cabling check -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["numbered", "unnumbered"])
@pytest.mark.parametrize("node", ["leaf01", "spine01", "spine02"])
def test_healthy_cabling_is_confirmed_by_lldp_and_ospf(variant: str, node: str) -> None:
    checked = cabling(variant, node, "healthy")
    n = len(checked.uplinks)
    assert n >= 2 and checked.problems() == [] and checked.notes() == []
    assert checked.summary() == f"{n}/{n} uplinks as planned (confirmed by LLDP: {n}, by OSPF router ID: {n})"


@pytest.mark.parametrize("variant", ["numbered", "unnumbered"])
def test_a_swapped_cable_names_expected_and_found_on_the_leaf(variant: str) -> None:
    (problem,) = cabling(variant, "leaf01", "swapped").problems()
    assert problem.kind == "cabling"
    assert problem.subject == "underlay.uplinks[0] eth49 (br-eth49)"
    assert problem.message == "cabled to spine02:eth3 (LLDP), expected spine01:eth1 (198.18.255.1)"


def test_numbered_swap_forms_no_adjacency_so_only_lldp_names_the_far_end() -> None:
    (eth49, _) = uplinks_of("numbered", "leaf01", "swapped")
    assert eth49.neighbor is None
    checked = check_cabling(uplinks_of("numbered", "leaf01", "swapped"), None, "lldpd is not running")
    assert checked.problems() == []  # OSPF alone cannot tell: the uplink check reports no neighbour
    assert checked.notes() == ["cabling not checked by LLDP: lldpd is not running"]


def test_the_spine_names_the_leaf_it_found_by_lldp_and_by_an_init_ospf_neighbour() -> None:
    (problem,) = cabling("unnumbered", "spine01", "swapped").problems()
    assert problem.subject == "underlay.uplinks[0] eth1"
    assert problem.message == (
        "cabled to leaf03:eth50 (LLDP) and router ID 198.18.0.13 (OSPF neighbour), expected leaf01:eth49 (198.18.0.11)"
    )


def test_ospf_alone_names_a_wrong_router_id() -> None:
    ups = uplinks_of("unnumbered", "spine01", "swapped")
    (problem,) = check_cabling(ups, None, "lldpcli is not installed").problems()
    assert problem.message == "cabled to router ID 198.18.0.13 (OSPF neighbour), expected leaf01:eth49 (198.18.0.11)"


def test_without_lldpd_an_ospf_match_passes_with_one_note() -> None:
    checked = check_cabling(uplinks_of("numbered", "leaf01", "healthy"), None, "lldpd does not answer")
    assert checked.problems() == []
    assert checked.notes() == ["cabling not checked by LLDP: lldpd does not answer"]
    assert checked.summary().startswith("2/2 uplinks as planned (confirmed by LLDP: 0, by OSPF router ID: 2)")


def test_the_youngest_neighbour_of_a_recabled_port_counts() -> None:
    recabled = parse_lldp(lldp_sample("json0", "leaf01-recabled"))
    (problem,) = check_cabling(uplinks_of("numbered", "leaf01", "swapped"), recabled).problems()
    assert "cabled to spine02:eth3 (LLDP)" in problem.message


def test_a_wrong_port_on_the_right_switch_is_a_miscabling() -> None:
    lldp = [
        dataclasses.replace(n, port_id="eth7") if n.interface == "eth49" else n
        for n in lldp_of("numbered", "leaf01", "healthy")
    ]
    (problem,) = check_cabling(uplinks_of("numbered", "leaf01", "healthy"), lldp).problems()
    found = "spine01:eth7 (LLDP) and router ID 198.18.255.1 (OSPF neighbour)"
    assert problem.message == f"cabled to {found}, expected spine01:eth1 (198.18.255.1)"


def test_an_uplink_nobody_answers_on_is_a_note() -> None:
    lldp = [n for n in lldp_of("numbered", "leaf01", "swapped") if n.interface != "eth49"]
    checked = check_cabling(uplinks_of("numbered", "leaf01", "swapped"), lldp)
    assert checked.problems() == []
    assert checked.notes() == ["underlay.uplinks[0] eth49 (br-eth49): no LLDP neighbour (does spine01 run lldpd?)"]


def test_json_report() -> None:
    doc = cabling("numbered", "leaf01", "swapped").as_json()
    assert doc["lldp_error"] is None and doc["notes"] == []
    assert doc["uplinks"][0] == {
        "path": "underlay.uplinks[0]",
        "name": "eth49",
        "expected": {"node": "spine01", "router_id": "198.18.255.1", "port": "eth1"},
        "lldp": {"system": "spine02", "port": "eth3"},
        "ospf_router_id": None,
        "ok": False,
    }
    assert doc["uplinks"][1]["ok"] is True


# --- verify and status --------------------------------------------------------------------------------------


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def run(
    monkeypatch: pytest.MonkeyPatch, variant: str, node: str, moment: str, lldp: Any, *args: str
) -> tuple[int, str, str]:
    """`tor-agent ARGS` on the recorded switch; `lldp`: what read_lldp returns, or the error it raises."""
    monkeypatch.setattr(health_cli, "read_underlay", lambda intent: state_of(variant, node, moment))

    def read_lldp() -> tuple[LldpNeighbour, ...]:
        if isinstance(lldp, Exception):
            raise lldp
        return tuple(lldp)

    monkeypatch.setattr(health_cli, "read_lldp", read_lldp)
    monkeypatch.setattr(health_cli, "check_overlay", lambda intent, read: (None, []))  # not these tests' subject
    monkeypatch.setattr(health_cli, "check_parts", lambda intent, only=None: [])
    monkeypatch.setattr(health_cli, "check_controllers", lambda intent, ovsdb, verifying: (None, []))
    result = runner().invoke(main, [*args, str(LIVE / variant / node / "agent.yaml")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_verify_names_expected_and_found_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    lldp = lldp_of("numbered", "leaf01", "swapped")
    code, out, err = run(monkeypatch, "numbered", "leaf01", "swapped", lldp, "verify", "--only", "underlay")
    assert (code, err) == (1, "")
    assert out.splitlines()[-2:] == [
        "leaf01: cabling degraded (1):",
        "  underlay.uplinks[0] eth49 (br-eth49): cabled to spine02:eth3 (LLDP), expected spine01:eth1 (198.18.255.1)",
    ]


def test_verify_json_lists_the_miscabling_as_degraded(monkeypatch: pytest.MonkeyPatch) -> None:
    lldp = lldp_of("numbered", "spine02", "swapped")
    code, out, _ = run(monkeypatch, "numbered", "spine02", "swapped", lldp, "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["cabling"]["uplinks"][2]["lldp"] == {"system": "leaf01", "port": "eth49"}
    assert doc["degraded"][-1] == {
        "kind": "cabling",
        "subject": "underlay.uplinks[2] eth3",
        "message": "cabled to leaf01:eth49 (LLDP), expected leaf03:eth50 (198.18.0.13)",
    }


def test_verify_healthy_cabling_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lldp = lldp_of("numbered", "leaf01", "healthy")
    code, out, _ = run(monkeypatch, "numbered", "leaf01", "healthy", lldp, "verify")
    assert code == 0
    assert out.splitlines() == [
        "leaf01: underlay healthy: 2/2 uplinks Full, 0 VTEP route(s)",
        "leaf01: cabling: 2/2 uplinks as planned (confirmed by LLDP: 2, by OSPF router ID: 2)",
    ]


def test_verify_without_lldpd_passes_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = LldpUnavailable("lldpd does not answer (is it running?): unable to connect to socket /run/lldpd.socket")
    code, out, _ = run(monkeypatch, "numbered", "leaf01", "healthy", gone, "verify")
    assert code == 0
    assert out.splitlines()[-2:] == [
        "leaf01: cabling: 2/2 uplinks as planned (confirmed by LLDP: 0, by OSPF router ID: 2)",
        "  note: cabling not checked by LLDP: lldpd does not answer (is it running?): unable to connect to socket "
        "/run/lldpd.socket",
    ]


def test_status_shows_the_cabling(monkeypatch: pytest.MonkeyPatch) -> None:
    lldp = lldp_of("numbered", "leaf01", "swapped")
    code, out, _ = run(monkeypatch, "numbered", "leaf01", "swapped", lldp, "status")
    assert code == 0
    assert "cabling: 1/2 uplinks as planned (confirmed by LLDP: 1, by OSPF router ID: 1)" in out.splitlines()
    assert (
        "degraded: underlay.uplinks[0] eth49 (br-eth49): cabled to spine02:eth3 (LLDP), expected spine01:eth1 "
        "(198.18.255.1)" in out.splitlines()
    )


def test_lldpd_is_not_asked_without_expectations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (LIVE / "numbered" / "leaf01" / "agent.yaml").read_text()
    bare = tmp_path / "leaf01" / "agent.yaml"
    bare.parent.mkdir()
    bare.write_text("\n".join(line for line in text.splitlines() if "neighbour:" not in line) + "\n")
    assert all(u.neighbour is None for u in load(bare).underlay.uplinks)
    monkeypatch.setattr(health_cli, "read_underlay", lambda intent: state_of("numbered", "leaf01", "healthy"))
    monkeypatch.setattr(health_cli, "read_lldp", lambda: pytest.fail("lldpd asked"))
    monkeypatch.setattr(health_cli, "check_overlay", lambda intent, read: (None, []))
    monkeypatch.setattr(health_cli, "check_parts", lambda intent, only=None: [])
    monkeypatch.setattr(health_cli, "check_controllers", lambda intent, ovsdb, verifying: (None, []))
    result = runner().invoke(main, ["verify", str(bare)])
    assert (result.exit_code, result.stdout) == (0, "leaf01: underlay healthy: 2/2 uplinks Full, 0 VTEP route(s)\n")


def test_reading_lldpd_says_why_it_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv == ["lldpcli", "-f", "json0", "show", "neighbors"] and kwargs["timeout"] > 0
        return subprocess.CompletedProcess(argv, 1, "", "unable to connect to socket /run/lldpd.socket\n")

    monkeypatch.setattr(readers.subprocess, "run", fake)
    with pytest.raises(LldpUnavailable, match=r"lldpd does not answer .*: unable to connect to socket"):
        readers.read_lldp()

    def missing(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", "lldpcli")

    monkeypatch.setattr(readers.subprocess, "run", missing)
    with pytest.raises(LldpUnavailable, match=r"lldpcli is not installed \(apt install lldpd\)"):
        readers.read_lldp()

    def slow(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(readers.subprocess, "run", slow)
    with pytest.raises(LldpUnavailable, match="did not answer within 5 s"):
        readers.read_lldp()

    def garbled(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "lldp: {", "")

    monkeypatch.setattr(readers.subprocess, "run", garbled)
    with pytest.raises(LldpUnavailable, match="output is not JSON"):
        readers.read_lldp()
