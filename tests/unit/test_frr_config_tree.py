"""FRR config parsing, normalisation, ownership and delta (pure: no FRR daemon needed).

`simulate` applies a delta to a parsed config the way FRR treats each change, so that every delta
can be checked by "after applying it, nothing is left to change"; batches are also fed to FRR's own
parser (`vtysh -C`) where vtysh is installed.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tor_agent.frr.apply import ConfigRefused, FrrDriver, FrrState, required_daemons
from tor_agent.frr.config_file import IntegratedConfig, NotWritable, PersistError
from tor_agent.frr.config_tree import FrrConfig, parse_config, redact
from tor_agent.frr.delta import (
    Change,
    Delta,
    Scope,
    compute_delta,
    override_key,
    removal_command,
    rendered_interfaces,
)
from tor_agent.frr.ledger import InterfaceLedger, LedgerError
from tor_agent.frr.vtysh import LinesRefused, Running, Session, Vtysh, VtyshError, _line_errors

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "frr.conf").is_file())
VTYSH = shutil.which("vtysh")
needs_vtysh = pytest.mark.skipif(VTYSH is None, reason="vtysh not installed (apt install frr): FRR parser check")

# What FRR 8.4.4 prints for the leaf-system-2-numbered rendering: interfaces sorted by name, a
# preamble, `frr version`, lines tor-agent does not render (`no ip forwarding`).
LEAF = (GOLDEN / "leaf-system-2-numbered" / "frr.conf").read_text()
LEAF_RUNNING = """\
Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname leaf1
log syslog informational
no ip forwarding
no ipv6 forwarding
no zebra nexthop kernel enable
service integrated-vtysh-config
!
interface eth1
 ip ospf area 0.0.0.0
 ip ospf bfd
 ip ospf bfd profile tor-agent
 ip ospf cost 10
 ip ospf dead-interval 4
 ip ospf hello-interval 1
 ip ospf network point-to-point
exit
!
interface eth2
 ip ospf area 0.0.0.0
 ip ospf bfd
 ip ospf bfd profile tor-agent
 ip ospf cost 10
 ip ospf dead-interval 4
 ip ospf hello-interval 1
 ip ospf network point-to-point
exit
!
interface lo
 ip ospf area 0.0.0.0
 ip ospf passive
exit
!
router ospf
 ospf router-id 198.18.0.11
 maximum-paths 8
exit
!
bfd
 profile tor-agent
  transmit-interval 100
  receive-interval 100
 exit
 !
exit
!
end
"""


def golden(case: str) -> str:
    return (GOLDEN / case / "frr.conf").read_text()


def delta(desired: str, running: str, ledger: tuple[str, ...] = ()) -> Delta:
    d = parse_config(desired)
    return compute_delta(d, parse_config(running), Scope.of(d, ledger))


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def simulate(config: FrrConfig, changes: Delta) -> FrrConfig:
    """Apply `changes` to `config` as FRR does: enter contexts (creating them), add, override, remove."""
    stanzas = {path: list(lines) for path, lines in config.stanzas.items()}
    for c in changes.changes:
        for n in range(1, len(c.path) + 1):
            stanzas.setdefault(c.path[:n], [])
            if n > 1 and c.path[n - 1] not in stanzas[c.path[: n - 1]]:
                stanzas[c.path[: n - 1]].append(c.path[n - 1])
        lines = stanzas.setdefault(c.path, [])
        if c.op == "remove":
            lines.remove(c.line)
            for path in [p for p in stanzas if p[: len(c.path) + 1] == (*c.path, c.line)]:
                del stanzas[path]
        elif c.op == "replace":
            assert c.old is not None and override_key(c.old) == override_key(c.line)
            lines[lines.index(c.old)] = c.line
        else:
            assert c.line not in lines
            lines.append(c.line)
            if c.opens_context:
                stanzas.setdefault((*c.path, c.line), [])
    return FrrConfig({path: tuple(lines) for path, lines in stanzas.items()})


def converges(desired: str, running: str, ledger: tuple[str, ...] = ()) -> Delta:
    """The delta, after checking that applying it leaves nothing to change."""
    d, r = parse_config(desired), parse_config(running)
    scope = Scope.of(d, ledger)
    forward = compute_delta(d, r, scope)
    assert not compute_delta(d, simulate(r, forward), scope), forward.commands()
    return forward


def vtysh_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert VTYSH is not None
    path = tmp_path / "check.conf"
    path.write_text(text)
    return subprocess.run([VTYSH, "-C", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)


# --- parsing and normalisation ---------------------------------------------------------------


def test_parse_golden_into_stanzas() -> None:
    config = parse_config(LEAF)
    assert config.lines(("interface eth1",))[:2] == ("ip ospf area 0.0.0.0", "ip ospf bfd")
    assert config.lines(("router ospf",)) == ("ospf router-id 198.18.0.11", "maximum-paths 8")
    assert config.lines(("bfd",)) == ("profile tor-agent",)
    assert config.lines(("bfd", "profile tor-agent")) == ("transmit-interval 100", "receive-interval 100")
    assert "hostname leaf1" in config.lines(())
    assert not any(line in ("!", "exit", "end") for lines in config.stanzas.values() for line in lines)


def test_running_layout_parses_like_the_rendering() -> None:
    rendered, running = parse_config(LEAF), parse_config(LEAF_RUNNING)
    for path in rendered.paths():
        assert set(rendered.lines(path)) <= set(running.lines(path)), path
    assert running.lines(()) == (*rendered.lines(())[:3], "no ip forwarding", *rendered.lines(())[3:])


@pytest.mark.parametrize("case", CASES)
def test_cosmetic_differences_give_an_empty_delta(case: str) -> None:
    text = golden(case)
    blocks = text.split("!\n")
    cosmetic = "\n\n!\nfrr version 8.4.4\n" + "!\n!\n".join(reversed(blocks[1:-1])) + blocks[0]
    cosmetic = cosmetic.replace("\n ", "\n   ").replace(" ip ospf", "  ip   ospf").replace("exit\n", "exit  \n")
    assert not delta(text, cosmetic)
    assert not delta(text, text)


def test_exit_and_bang_lines_are_not_needed() -> None:
    bare = "\n".join(line for line in LEAF.splitlines() if line.strip() not in ("!", "exit", "end"))
    assert parse_config(bare) == parse_config(LEAF)


def test_empty_nested_stanza_exists() -> None:
    config = parse_config("bfd\n profile tor-agent\n exit\n !\nexit\n")
    assert config.has(("bfd", "profile tor-agent")) and config.lines(("bfd",)) == ("profile tor-agent",)
    assert not parse_config("bfd\nexit\n").has(("bfd", "profile tor-agent"))


def test_nested_contexts_of_other_daemons() -> None:
    config = parse_config(
        "router bgp 65001\n neighbor 192.0.2.1 remote-as 65002\n address-family ipv4 unicast\n"
        "  network 192.0.2.0/24\n exit-address-family\nexit\n"
        "interface eth1\n link-params\n  enable\n exit-link-params\n ip ospf cost 5\nexit\n"
    )
    assert config.lines(("router bgp 65001", "address-family ipv4 unicast")) == ("network 192.0.2.0/24",)
    assert config.lines(("interface eth1", "link-params")) == ("enable",)
    assert config.lines(("interface eth1",)) == ("link-params", "ip ospf cost 5")


def test_duplicate_lines_merge_and_order_is_kept() -> None:
    config = parse_config(
        "hostname a\nhostname b\nhostname a\ninterface x\n ip ospf cost 1\nexit\ninterface x\n ip ospf cost 1\n"
    )
    assert config.lines(()) == ("hostname a", "hostname b")
    assert config.lines(("interface x",)) == ("ip ospf cost 1",)


def test_whitespace_is_normalised() -> None:
    assert parse_config("interface eth1\n  ip   ospf\tcost  10  \n").lines(("interface eth1",)) == ("ip ospf cost 10",)


# --- ownership -------------------------------------------------------------------------------


def test_scope() -> None:
    scope = Scope.of(parse_config(LEAF), ledger=("eth7",))
    assert scope.interfaces == {"lo", "eth1", "eth2", "eth7"}
    assert scope.owns(("interface eth1",), "ip ospf mtu-ignore")
    assert scope.owns(("interface eth7",), "ip ospf cost 5")
    assert not scope.owns(("interface eth1",), "description to spine1")
    assert not scope.owns(("interface eth9",), "ip ospf cost 5")
    assert not scope.owns(("interface eth1 vrf red",), "ip ospf cost 5")
    assert scope.owns(("router ospf",), "redistribute connected")
    assert not scope.owns(("router ospf vrf red",), "redistribute connected")
    assert scope.owns(("bfd",), "profile tor-agent") and scope.owns(("bfd", "profile tor-agent"), "echo-mode")
    assert not scope.owns(("bfd",), "profile other") and not scope.owns(("bfd", "profile other"), "echo-mode")
    assert not scope.owns(("bfd", "peer 192.0.2.1"), "shutdown")
    assert scope.owns((), "no zebra nexthop kernel enable") and scope.owns((), "zebra nexthop kernel enable")
    assert scope.owns((), "log syslog debugging")
    assert not scope.owns((), "hostname leaf1") and not scope.owns((), "frr defaults traditional")
    assert not scope.owns((), "ip route 10.0.0.0/8 Null0") and not scope.owns((), "no ip forwarding")


HAND_MADE = """\
ip route 10.0.0.0/8 Null0
ip route 203.0.113.0/24 198.18.1.1
interface eth1
 description uplink to spine1
exit
interface eth9
 description host port
 ip address 192.0.2.1/24
 ip ospf cost 5
exit
router ospf vrf red
 redistribute connected
exit
router bgp 65001
 neighbor 192.0.2.2 remote-as 65002
exit
bfd
 profile other
  detect-multiplier 7
 exit
 peer 192.0.2.9
 exit
exit
"""


def test_hand_made_lines_survive() -> None:
    d = delta(LEAF, LEAF_RUNNING + HAND_MADE)
    assert not d
    assert d.notes == ("interface eth9: OSPF lines not made by tor-agent, left as they are",)


def test_hand_made_lines_survive_a_real_change() -> None:
    d = converges(LEAF.replace("maximum-paths 8", "maximum-paths 4"), LEAF_RUNNING + HAND_MADE)
    assert d.commands() == "router ospf\n maximum-paths 4\nexit\n"


def test_foreign_ospf_lines_on_our_interface_and_router_are_removed() -> None:
    running = edit(LEAF_RUNNING, " ip ospf cost 10\n", " ip ospf cost 10\n ip ospf mtu-ignore\n description up\n")
    running = edit(running, " maximum-paths 8\n", " maximum-paths 8\n redistribute connected\n")
    d = converges(LEAF, running)
    assert d.commands() == (
        "interface eth1\n no ip ospf mtu-ignore\nexit\nrouter ospf\n no redistribute connected\nexit\n"
    )


# --- delta: overrides, removals, order ---------------------------------------------------------


def test_cost_change_is_one_override_line() -> None:
    d = converges(edit(LEAF, "ip ospf cost 10", "ip ospf cost 20"), LEAF_RUNNING)
    assert d.changes == (Change(("interface eth1",), "replace", "ip ospf cost 20", "ip ospf cost 10"),)
    assert d.commands() == "interface eth1\n ip ospf cost 20\nexit\n"
    assert d.diff_text() == "interface eth1\n- ip ospf cost 10\n+ ip ospf cost 20\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ip ospf hello-interval 1", "ip ospf hello-interval 2"),
        ("ip ospf dead-interval 4", "ip ospf dead-interval 8"),
        ("maximum-paths 8", "maximum-paths 16"),
        ("ospf router-id 198.18.0.11", "ospf router-id 198.18.0.99"),
        ("transmit-interval 100", "transmit-interval 50"),
        ("receive-interval 100", "receive-interval 50"),
        ("ip ospf network point-to-point", "ip ospf network point-to-multipoint"),
        ("log syslog informational", "log syslog warnings"),
    ],
)
def test_single_valued_commands_are_overridden_in_place(old: str, new: str) -> None:
    d = converges(edit(LEAF, old, new), LEAF_RUNNING)
    assert [(c.op, c.old, c.line) for c in d.changes] == [("replace", old, new)]
    assert f"no {old}" not in d.commands()


def test_lsa_timers_are_overridden_in_place() -> None:
    timers = " timers throttle lsa all {}\n timers lsa min-arrival {}\n maximum-paths 8\n"
    desired = edit(LEAF, " maximum-paths 8\n", timers.format(10, 20))
    d = converges(desired, edit(LEAF_RUNNING, " maximum-paths 8\n", timers.format(0, 0)))
    assert d.commands() == "router ospf\n timers throttle lsa all 10\n timers lsa min-arrival 20\nexit\n"
    back = converges(LEAF, desired)
    assert back.commands() == "router ospf\n no timers lsa min-arrival 20\n no timers throttle lsa all 10\nexit\n"


def test_new_single_valued_line_is_a_plain_add() -> None:
    d = converges(
        edit(LEAF, " maximum-paths 8\n", " maximum-paths 8\n auto-cost reference-bandwidth 1000\n"), LEAF_RUNNING
    )
    assert d.commands() == "router ospf\n auto-cost reference-bandwidth 1000\nexit\n"


def test_area_change_removes_first() -> None:
    desired = LEAF.replace("ip ospf area 0.0.0.0", "ip ospf area 0.0.0.1")
    d = converges(desired, LEAF_RUNNING)
    commands = d.commands().splitlines()
    assert commands.index(" no ip ospf area 0.0.0.0") < commands.index(" ip ospf area 0.0.0.1")
    assert all(c.op in ("add", "remove") for c in d.changes) and len(d.changes) == 6


def test_removals_come_before_additions_and_in_reverse_order() -> None:
    desired = edit(LEAF, " ip ospf bfd\n ip ospf bfd profile tor-agent\n", "")
    desired = edit(
        desired, " ip ospf area 0.0.0.0\n", " ip ospf area 0.0.0.0\n ip ospf authentication message-digest\n"
    )
    d = converges(desired, LEAF_RUNNING)
    assert [c.op for c in d.changes] == ["remove", "remove", "add"]
    assert [c.line for c in d.changes[:2]] == ["ip ospf bfd profile tor-agent", "ip ospf bfd"]


def test_message_digest_key_change_removes_the_old_key_first() -> None:
    desired = golden("leaf-auth")
    running = desired.replace("md5 Fabr1c-md5!key", "md5 old-key")
    d = converges(desired, running)
    assert d.commands().count("no ip ospf message-digest-key 7 md5 old-key") == 2
    assert d.commands().index("no ip ospf message-digest-key") < d.commands().index(
        " ip ospf message-digest-key 7 md5 F"
    )


def test_no_lines_never_match_a_substring() -> None:
    # FRR #18907: a removal matched as a substring took out a new line. Every match here is exact.
    running = edit(LEAF_RUNNING, " ip ospf cost 10\n", " ip ospf cost 1\n")
    running = edit(running, " ip ospf area 0.0.0.0\n", " ip ospf area 0.0.0.0\n ip ospf area 0.0.0.0 198.18.1.10\n")
    desired = edit(LEAF, " ip ospf area 0.0.0.0\n", " ip ospf area 0.0.0.0\n ip ospf area 0.0.0.0 198.18.1.1\n")
    d = converges(desired, running)
    assert [(c.op, c.line) for c in d.changes] == [
        ("remove", "ip ospf area 0.0.0.0 198.18.1.10"),
        ("add", "ip ospf area 0.0.0.0 198.18.1.1"),
        ("replace", "ip ospf cost 10"),
    ]
    assert " no ip ospf area 0.0.0.0\n" not in d.commands()


def test_from_empty_adds_in_dependency_order() -> None:
    empty = "frr version 8.4.4\nfrr defaults traditional\nhostname leaf1\nno ipv6 forwarding\n!\nend\n"
    d = converges(LEAF, empty)
    heads = [c.path[0] if c.path else "" for c in d.changes]
    firsts = [heads.index(h) for h in ("", "bfd", "router ospf", "interface lo")]
    assert firsts == sorted(firsts) and all(c.op == "add" for c in d.changes)
    assert "hostname" not in d.commands() and "frr defaults" not in d.commands()


def test_uplink_removed_from_intent_with_ledger_removes_only_its_ospf_lines() -> None:
    desired = edit(LEAF, LEAF[LEAF.index("interface eth2") : LEAF.index("router ospf")], "")
    running = edit(LEAF_RUNNING, "interface eth2\n", "interface eth2\n description spine2\n")
    d = converges(desired, running, ledger=("eth1", "eth2", "lo"))
    assert {c.path for c in d.changes} == {("interface eth2",)}
    assert all(c.op == "remove" and c.line.startswith("ip ospf ") for c in d.changes) and len(d.changes) == 7
    assert d.commands().splitlines()[-2] == " no ip ospf area 0.0.0.0"  # the area goes last


def test_uplink_removed_from_intent_without_ledger_is_reported_not_removed() -> None:
    desired = edit(LEAF, LEAF[LEAF.index("interface eth2") : LEAF.index("router ospf")], "")
    d = delta(desired, LEAF_RUNNING)
    assert not d and d.notes == ("interface eth2: OSPF lines not made by tor-agent, left as they are",)


def test_bfd_disabled_removes_interface_lines_then_the_profile() -> None:
    desired = golden("leaf-bfd-off")
    running = desired.replace(
        " ip ospf area 0.0.0.0\n ip ospf cost",
        " ip ospf area 0.0.0.0\n ip ospf bfd\n ip ospf bfd profile tor-agent\n ip ospf cost",
    )
    running = running.replace(
        "end\n", "bfd\n profile tor-agent\n  transmit-interval 100\n exit\n profile other\n exit\nexit\nend\n"
    )
    d = converges(desired, running)
    assert d.changes[-1] == Change(("bfd",), "remove", "profile tor-agent")
    assert "transmit-interval" not in d.commands() and "profile other" not in d.commands()
    assert d.commands().endswith("bfd\n no profile tor-agent\nexit\n")


def test_bfd_profile_with_defaults_only_is_kept_or_created() -> None:
    desired = edit(LEAF, "  transmit-interval 100\n  receive-interval 100\n", "")
    running = edit(LEAF_RUNNING, "  transmit-interval 100\n  receive-interval 100\n", "")
    assert not delta(desired, running)
    without = edit(running, "bfd\n profile tor-agent\n exit\n !\nexit\n", "")
    d = converges(desired, without)
    assert d.changes == (Change(("bfd",), "add", "profile tor-agent", opens_context=True),)
    assert d.commands() == "bfd\n profile tor-agent\n exit\nexit\n"


def test_values_without_a_no_form_are_reset() -> None:
    running = edit(LEAF_RUNNING, "  receive-interval 100\n", "  receive-interval 100\n  detect-multiplier 5\n")
    running = edit(running, " maximum-paths 8\n", "")
    desired = edit(LEAF, " maximum-paths 8\n", "")
    assert converges(
        desired, running.replace("ospf router-id 198.18.0.11", "ospf router-id 198.18.0.11\n maximum-paths 8")
    ).commands() == (
        "router ospf\n no maximum-paths\nexit\nbfd\n profile tor-agent\n  detect-multiplier 3\n exit\nexit\n"
    )


def test_removal_commands() -> None:
    assert removal_command("ip ospf cost 10") == "no ip ospf cost 10"
    assert removal_command("no ipv6 forwarding") == "ipv6 forwarding"
    assert removal_command("maximum-paths 8") == "no maximum-paths"
    assert removal_command("transmit-interval 100") == "transmit-interval 300"
    assert removal_command("echo receive-interval 20") == "echo receive-interval 50"


def test_global_lines_are_added_or_toggled_never_removed() -> None:
    running = edit(LEAF_RUNNING, "no zebra nexthop kernel enable\n", "")
    running = edit(running, "log syslog informational\n", "log syslog debugging\nlog file /var/log/frr.log\n")
    d = converges(LEAF, running)
    assert d.commands() == "log syslog informational\nno zebra nexthop kernel enable\n"
    back = compute_delta(parse_config(running), parse_config(LEAF_RUNNING), Scope.of(parse_config(LEAF)))
    assert back.commands() == "zebra nexthop kernel enable\nlog syslog debugging\n"


def test_hostname_is_not_applied_but_noted() -> None:
    d = delta(LEAF, LEAF_RUNNING.replace("hostname leaf1", "hostname switch"))
    assert not d
    assert len(d.notes) == 1 and "hostname leaf1" in d.notes[0] and "hostname switch" in d.notes[0]


@pytest.mark.parametrize(("a", "b"), list(itertools.permutations(CASES[:6], 2)))
def test_every_golden_transition_converges(a: str, b: str) -> None:
    converges(golden(b), golden(a), ledger=tuple(rendered_interfaces(parse_config(golden(a)))))


def test_rollback_delta_restores_the_previous_owned_lines() -> None:
    previous = parse_config(LEAF_RUNNING + HAND_MADE)
    desired = parse_config(golden("leaf-bfd-off").replace("hostname leaf4", "hostname leaf1"))
    scope = Scope.of(desired, ledger=("eth1", "eth2"))
    after = simulate(previous, compute_delta(desired, previous, scope))
    back = compute_delta(previous, after, scope)
    restored = simulate(after, back)
    assert not compute_delta(previous, restored, scope)
    for path in previous.paths():
        assert set(restored.lines(path)) == set(previous.lines(path)), path


# --- FRR's parser accepts every batch ----------------------------------------------------------


@needs_vtysh
def test_batches_pass_frr_parser(tmp_path: Path) -> None:
    batches = [delta(golden(b), golden(a), ("eth1", "eth2")).commands() for a, b in itertools.permutations(CASES, 2)]
    batches.append(delta(golden("leaf-bfd-off"), LEAF_RUNNING, ("eth1", "eth2")).commands())
    text = (
        "".join(batches)
        + "router ospf\n no maximum-paths\n no timers throttle lsa all 10\n no timers lsa min-arrival 20\nexit\n"
    )
    result = vtysh_check(text, tmp_path)
    assert result.returncode == 0, result.stderr


@needs_vtysh
def test_frr_parser_refuses_the_no_forms_we_avoid(tmp_path: Path) -> None:
    result = vtysh_check(
        "router ospf\n no maximum-paths 8\nexit\nbfd\n profile x\n  no transmit-interval 100\n exit\nexit\n", tmp_path
    )
    assert result.returncode != 0 and result.stderr.count("Unknown command") == 2


# --- redaction, vtysh error parsing, ledger ----------------------------------------------------


def test_keys_are_redacted_for_people_but_sent_to_frr() -> None:
    d = delta(golden("leaf-auth"), golden("leaf-auth").replace("md5 Fabr1c-md5!key", "md5 old"))
    assert "Fabr1c" in d.commands()
    shown = d.diff_text() + json.dumps([c.as_dict() for c in d.changes])
    assert "Fabr1c" not in shown and "old" not in shown.replace("<redacted>", "") and "<redacted>" in shown
    assert redact("ip ospf authentication-key s3cret") == "ip ospf authentication-key <redacted>"


def test_vtysh_line_errors_name_line_and_frr_message() -> None:
    batch = "interface eth1\n ip ospf area 0.0.0.1\n ip ospf bogus\n ip ospf message-digest-key 1 md5 k3y\nexit\n"
    stderr = (
        "line 2: Failure to communicate[13] to ospfd, line:  ip ospf area 0.0.0.1\n\n"
        "line 3: % Unknown command[41]:  ip ospf bogus\n"
        "line 4: Failure to communicate[13] to ospfd, line:  ip ospf message-digest-key 1 md5 k3y\n"
    )
    errors = _line_errors(stderr, batch)
    assert [(e.number, e.line, e.message) for e in errors] == [
        (2, "ip ospf area 0.0.0.1", "ospfd refused it"),
        (3, "ip ospf bogus", "% Unknown command"),
        (4, "ip ospf message-digest-key 1 md5 <redacted>", "ospfd refused it"),
    ]
    message = str(LinesRefused("-f", errors, "Must remove previous area config before changing ospf area"))
    assert "line 2 `ip ospf area 0.0.0.1`: ospfd refused it" in message and "Must remove previous area" in message
    assert "k3y" not in message


def test_ledger_round_trip(tmp_path: Path) -> None:
    ledger = InterfaceLedger.in_dir(tmp_path / "state")
    assert ledger.load() == frozenset()
    ledger.save(["eth2", "eth1"])
    assert ledger.load() == {"eth1", "eth2"}
    mtime = ledger.path.stat().st_mtime_ns
    ledger.save({"eth1", "eth2"})
    assert ledger.path.stat().st_mtime_ns == mtime
    assert [p.name for p in ledger.path.parent.iterdir()] == ["frr-interfaces.json"]


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"version": 2, "interfaces": []}', '{"version": 1, "interfaces": [1]}']
)
def test_ledger_refuses_a_broken_file(tmp_path: Path, text: str) -> None:
    ledger = InterfaceLedger(tmp_path / "frr-interfaces.json")
    ledger.path.write_text(text)
    with pytest.raises(LedgerError, match=str(ledger.path)):
        ledger.load()


# --- vtysh session output, frr.conf writer, refusals before FRR is touched ----------------------

SESSION = """
Hello, this is FRRouting (version 8.4.4).
Copyright 1996-2005 Kunihiro Ishiguro, et al.

leaf1# configure
leaf1(config)# interface eth1
leaf1(config-if)#  ip ospf area 0.0.0.1
Must remove previous area config before changing ospf area
leaf1(config-if)#  ip ospf cost 20
leaf1(config-if)# exit
leaf1(config)# router ospf
leaf1(config-router)#  auto-cost reference-bandwidth 1000
% OSPF: Reference bandwidth is changed.
        Please ensure reference bandwidth is consistent across all routers
leaf1(config-router)# exit
leaf1(config)# end
leaf1# show daemons
 zebra ospfd watchfrr staticd bfdd
leaf1# show running-config
Building configuration...

Current configuration:
!
frr version 8.4.4
hostname leaf1
!
interface eth1
 ip ospf cost 20
exit
!
end
leaf1# """
BATCH = (
    "interface eth1\n ip ospf area 0.0.0.1\n ip ospf cost 20\nexit\n"
    "router ospf\n auto-cost reference-bandwidth 1000\nexit\n"
)


class _FakeSession(Session):
    """Answers a batch with a recorded vtysh session output."""

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.sent: list[str] = []

    def send(self, script: str) -> str:
        self.sent.append(script)
        return self.stdout


def test_configure_reads_answers_and_running_config_from_one_session() -> None:
    session = _FakeSession(SESSION)
    configured = Vtysh(binary="/nonexistent/vtysh").configure(BATCH, session)
    assert session.sent == ["configure\n" + BATCH + "end\nshow daemons\nshow running-config\n"]
    assert [(m.number, m.line) for m in configured.messages] == [
        (2, "ip ospf area 0.0.0.1"),
        (6, "auto-cost reference-bandwidth 1000"),
    ]
    assert configured.messages[0].message == "Must remove previous area config before changing ospf area"
    assert configured.messages[1].message.startswith("% OSPF: Reference bandwidth is changed. Please ensure")
    assert configured.running.daemons == {"zebra", "ospfd", "watchfrr", "staticd", "bfdd"}
    assert configured.running.text.startswith("!\nfrr version 8.4.4\n") and configured.running.text.endswith("!\nend\n")


def test_configure_falls_back_to_a_separate_read_on_unknown_output() -> None:
    calls: list[list[str]] = []

    @dataclass(frozen=True)
    class Fake(Vtysh):
        def _run(self, what: str, args: list[str], check: bool = True) -> Any:
            calls.append(args)
            out = " zebra ospfd\nBuilding configuration...\n\nCurrent configuration:\n!\nend\n"
            return subprocess.CompletedProcess(args, 0, out, "")

    configured = Fake().configure(BATCH, _FakeSession("garbled"))
    assert calls == [["-c", "show daemons", "-c", "show running-config"]]
    assert configured.running == Running("!\nend\n", frozenset({"zebra", "ospfd"})) and configured.messages == ()


def test_frr_conf_is_written_like_vtysh_w_atomically_with_a_backup(tmp_path: Path) -> None:
    conf = IntegratedConfig(tmp_path / "frr.conf")
    conf.path.write_text("old\n")
    conf.path.chmod(0o640)
    conf.save("!\nfrr version 8.4.4\nhostname leaf1\n!\ninterface eth1\n ip ospf cost 20\nexit\n!\nend\n")
    assert conf.path.read_text() == "frr version 8.4.4\nhostname leaf1\n!\ninterface eth1\n ip ospf cost 20\nexit\n!\n"
    assert (tmp_path / "frr.conf.sav").read_text() == "old\n"
    assert conf.path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frr.conf", "frr.conf.sav"]


def test_frr_conf_write_failure_is_a_runtime_failure(tmp_path: Path) -> None:
    with pytest.raises(PersistError, match="no-such-dir"):
        IntegratedConfig(tmp_path / "no-such-dir" / "frr.conf").save("!\nend\n")


def test_a_rendering_without_router_ospf_is_refused_before_frr_is_asked() -> None:
    driver = FrrDriver(Vtysh(binary="/nonexistent/vtysh"))
    state = FrrState(Running("", frozenset({"zebra", "ospfd"})), frozenset())
    with pytest.raises(ConfigRefused, match=r"no `router ospf` stanza.*nothing was changed"):
        driver.plan("interface eth1\n ip ospf cost 10\nexit\n", state)
    with pytest.raises(ConfigRefused):
        driver.check("")


def test_required_daemons() -> None:
    assert required_daemons(parse_config(LEAF)) == {"zebra", "ospfd", "bfdd"}
    assert required_daemons(parse_config(golden("leaf-bfd-off"))) == {"zebra", "ospfd"}


class _SavingVtysh(Vtysh):
    """A vtysh whose `write memory` is recorded (FRR's own save), failing on demand."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(binary="/nonexistent/vtysh")
        object.__setattr__(self, "saves", [])
        object.__setattr__(self, "fail", fail)

    def write_memory(self) -> None:
        self.saves.append("write memory")  # type: ignore[attr-defined]
        if self.fail:  # type: ignore[attr-defined]
            raise VtyshError("write memory", "FRR did not confirm the write")


class _ReadOnlyConfig(IntegratedConfig):
    def save(self, running_text: str) -> None:
        raise NotWritable(self.path, "Read-only file system (not tor-agent's to write)")


def test_a_frr_conf_tor_agent_may_not_write_is_saved_by_frr_itself(caplog: pytest.LogCaptureFixture) -> None:
    """Under the service's systemd sandbox /etc is read-only to tor-agent: FRR saves its own file."""
    vtysh = _SavingVtysh()
    FrrDriver(vtysh, config_file=_ReadOnlyConfig(Path("/etc/frr/frr.conf")))._persist("router ospf\nexit\n")
    assert vtysh.saves == ["write memory"]  # type: ignore[attr-defined]
    failing = _SavingVtysh(fail=True)
    driver = FrrDriver(failing, config_file=_ReadOnlyConfig(Path("/etc/frr/frr.conf")))
    for _ in range(3):
        driver._persist("router ospf\nexit\n")
    said = [r.getMessage() for r in caplog.records if "FRR starts from the file as it is" in r.getMessage()]
    assert len(said) == 1 and "FRR's own save failed too" in said[0]  # once, not once per change
    assert failing.saves == ["write memory"] * 3  # type: ignore[attr-defined]
