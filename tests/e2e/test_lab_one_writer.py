"""One writer on a lab leaf running `tor-agent run`: `tor-agent apply` hands the intent to the running agent,
which applies it and is not reverted by its own drift repair; an intent that loads but that FRR's parser
refuses changes nothing anywhere (kernel links, OVS, FRR)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_underlay import running_config

from labs.labkit.lab import REPO, Lab
from labs.labkit.nodes import INTENT, paused_agents, tor_agent_binary

pytestmark = pytest.mark.lab

WORK = "/run/test-one-writer"  # node-private
BRIDGE = "br-tor"


def agent(lab: Lab, node: str, *args: str, env: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`tor-agent ARGS` inside `node` (with `env` as NAME=VALUE), never failing the test by itself."""
    return lab.exec(node, "env", *env, tor_agent_binary(lab.topo), *args, timeout=120, check=False)


def gre_keys(lab: Lab, node: str) -> dict[str, str]:
    """Tunnel port -> its `options:key`."""
    rows = lab.json(node, "ovs-vsctl", "--format=json", "--columns=name,options", "find", "Interface", "type=gre")
    return {name: dict(options[1]).get("key", "") for name, options in rows["data"]}


def write_intent(lab: Lab, node: str, data: dict[str, Any], name: str) -> str:
    """`data` as an intent file in `node`'s private /run; its path inside the node."""
    return lab.write_intent(node, data, f"{WORK}/{name}")


def test_apply_goes_through_the_running_agent_and_is_not_reverted(converged: Lab, wait_until: Any) -> None:
    leaf = converged.role("leaf")[0]
    data = converged.intent(leaf)
    old_key = str(data["overlay"]["tunnels"]["key"])
    new_key = "77" if old_key == "flow" else str(int(old_key) + 1)  # a fixed key, or the next one
    data["overlay"]["tunnels"]["key"] = int(new_key)
    changed = write_intent(converged, leaf, data, "agent.yaml")
    try:
        done = agent(converged, leaf, "apply", changed)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "by the running agent (pid " in done.stderr
        assert "OVS: update port gre-" in done.stdout or "tunnels: update port gre-" in done.stdout, done.stdout
        assert set(gre_keys(converged, leaf).values()) == {new_key}
        status = converged.json(leaf, "cat", "/run/tor-agent/status.json")
        assert status["config"] == changed and status["last_pass"]["changed"] is True
        # A drift repair after the apply uses the applied intent: a tunnel port deleted by hand comes back keyed
        # as applied, and no port falls back to the old key.
        victim = sorted(gre_keys(converged, leaf))[0]
        converged.exec(leaf, "ovs-vsctl", "del-port", BRIDGE, victim)
        wait_until(lambda: victim in gre_keys(converged, leaf), 5, 0.05, f"the agent to restore {victim}")
        assert set(gre_keys(converged, leaf).values()) == {new_key}
    finally:
        agent(converged, leaf, "apply", INTENT)
        converged.exec(leaf, "rm", "-rf", WORK)
    assert set(gre_keys(converged, leaf).values()) == {old_key}
    assert converged.json(leaf, "cat", "/run/tor-agent/status.json")["config"] == INTENT


def node_state(lab: Lab, node: str) -> tuple[str, str, str, str]:
    """What an apply could change: FRR's running configuration, addresses and MTUs, OVS rows, nftables."""
    links = lab.json(node, "ip", "-j", "address", "show")
    shown = json.dumps(sorted((i["ifname"], i["mtu"], [a["local"] for a in i["addr_info"]]) for i in links))
    ovs = lab.exec(node, "ovs-vsctl", "--format=json", "--columns=name,options,mtu_request", "list", "Interface").stdout
    return running_config(lab, node), shown, ovs, lab.exec(node, "nft", "list", "ruleset").stdout


def test_an_intent_frrs_parser_refuses_changes_nothing_anywhere(converged: Lab, tmp_path: Path) -> None:
    """The intent is valid and changes links (an uplink MTU), OVS (the tunnel key) and FRR (a cost), but its
    rendering holds a line FRR's parser refuses: refused before any stage changed anything."""
    leaf = converged.role("leaf")[0]
    templates = tmp_path / "templates"  # the host's /tmp: visible inside the node
    shutil.copytree(REPO / "frr-templates", templates)
    main = templates / "frr.conf.j2"
    broken = main.read_text().replace(
        "service integrated-vtysh-config\n", "service integrated-vtysh-config\nno-such-command 1\n"
    )
    main.write_text(broken)
    data = converged.intent(leaf)
    data["underlay"]["uplinks"][0]["mtu"] = 8900
    data["underlay"]["uplinks"][0]["cost"] = 77
    data["overlay"]["tunnels"]["key"] = 4242
    with paused_agents(converged.topo, [leaf]):  # no running agent: the command applies itself
        changed = write_intent(converged, leaf, data, "refused.yaml")
        before = node_state(converged, leaf)
        done = agent(converged, leaf, "apply", changed, env=(f"TOR_AGENT_TEMPLATES={templates}",))
        after = node_state(converged, leaf)
        converged.exec(leaf, "rm", "-rf", WORK)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refused: FRR's parser (vtysh -C) refused" in done.stderr and "no-such-command 1" in done.stderr
    assert "nothing was changed" in done.stderr and "Traceback" not in done.stderr
    assert after == before
