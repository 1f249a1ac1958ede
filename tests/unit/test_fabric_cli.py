"""`tor-agent fabric render` and `tor-agent fabric check` as an operator runs them: files, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from tor_agent.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "labs" / "containerlab" / "fabric.clab.yml"
DEMO_SETTINGS = REPO / "labs" / "containerlab" / "fabric.settings.yml"


def run(*args: str) -> tuple[int, str, str]:
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click 8.1 (Debian 12)
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_render_writes_a_directory_per_switch(tmp_path: Path) -> None:
    out = tmp_path / "configs"
    code, stdout, stderr = run(
        "fabric", "render", str(DEMO), "--settings", str(DEMO_SETTINGS), "--output-dir", str(out)
    )
    assert (code, stderr) == (0, "")
    assert stdout == f"{out}: rendered 2 spines and 3 leaves from {DEMO}\n"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml")) == [
        f"{n}/{f}" for n in ("leaf1", "leaf2", "leaf3", "spine1", "spine2") for f in ("agent.yaml", "fabric.yaml")
    ]
    assert run("check", str(out / "leaf3" / "agent.yaml"))[0] == 0
    view = yaml.safe_load((out / "leaf1" / "fabric.yaml").read_text())
    assert view["uplinks"][0] == {
        "name": "eth1",
        "address": "198.18.1.1/31",
        "neighbour": {"node": "spine1", "router_id": "198.18.255.1", "port": "eth1", "address": "198.18.1.0/31"},
    }


def test_render_json_and_a_second_render_notes_what_it_left(tmp_path: Path) -> None:
    out = tmp_path / "configs"
    run("fabric", "render", str(DEMO), "--output-dir", str(out))
    (out / "leaf1" / "old.key").write_text("x")
    (out / "leaf9").mkdir()
    code, stdout, _ = run("fabric", "render", "--json", str(DEMO), "--output-dir", str(out))
    data = json.loads(stdout)
    assert code == 0 and data["ok"] is True and data["errors"] == [] and data["warnings"] == []
    assert data["nodes"]["leaf1"] == ["agent.yaml", "fabric.yaml"]
    assert [n["subject"] for n in data["notes"]] == [str(out / "leaf1" / "old.key"), str(out / "leaf9")]
    assert (out / "leaf1" / "old.key").exists()  # never deleted


def test_render_of_a_bad_topology_writes_nothing(tmp_path: Path) -> None:
    topo = tmp_path / "bad.clab.yml"
    topo.write_text(
        "topology:\n  nodes:\n    s1: {labels: {tor-agent.role: spine}}\n    s2: {labels: {tor-agent.role: spine}}\n"
        "    l1: {labels: {tor-agent.role: leaf}}\n"
        "  links:\n    - endpoints: [s1:eth1, s2:eth1]\n    - endpoints: [s1:eth2, l1:eth1]\n"
    )
    out = tmp_path / "out"
    code, stdout, stderr = run("fabric", "render", str(topo), "--output-dir", str(out))
    assert code == 2 and stdout == "" and not out.exists()
    assert stderr.splitlines() == [
        f"{topo}: topology.links[0]: s1:eth1 -- s2:eth1: a link between two spines is not supported (a fabric link "
        "joins a leaf and a spine; a host link joins a leaf and a host)",
        f"{topo}: topology.nodes.s2: spine s2 has no link to a leaf (add one to links)",
        f"{topo}: 2 errors, 0 warnings",
    ]
    assert "Traceback" not in stderr


def test_render_refuses_bad_settings_and_names_them(tmp_path: Path) -> None:
    settings = tmp_path / "s.yml"
    settings.write_text("leaf:\n  overlay: {datapath: kernel}\nfabric: {links: {prefix: 198.18.1.0/24}}\n")
    code, _, stderr = run("fabric", "render", str(DEMO), "--settings", str(settings), "--output-dir", str(tmp_path))
    assert code == 2
    assert stderr.splitlines()[0] == (
        f"{settings}: leaf.overlay.datapath: 'kernel' is not supported (allowed: system | netdev) "
        "[leaf1, leaf2 and leaf3: overlay.datapath]"
    )


def test_check_rendered_and_hand_written(tmp_path: Path) -> None:
    code, stdout, stderr = run("fabric", "check", str(DEMO), "--settings", str(DEMO_SETTINGS))
    assert (code, stdout, stderr) == (0, f"{DEMO}: ok (5 switches, 6 links)\n", "")
    out = tmp_path / "configs"
    run("fabric", "render", str(DEMO), "--output-dir", str(out))
    intent = out / "leaf2" / "agent.yaml"
    intent.write_text(intent.read_text().replace("mtu: 9000", "mtu: 9100", 1))
    code, stdout, stderr = run("fabric", "check", str(DEMO), "--intents", str(out))
    assert code == 2 and stdout == ""
    assert stderr.splitlines() == [
        "link spine1:eth2 -- leaf2:eth1: mtu differs: 9000 on spine1 (underlay.uplinks[1].mtu), 9100 on leaf2 "
        "(underlay.uplinks[0].mtu): OSPF never gets past ExStart",
        f"{DEMO}: 1 error, 0 warnings",
    ]
    code, stdout, _ = run("fabric", "check", "--json", str(DEMO), "--intents", str(out))
    data = json.loads(stdout)
    assert code == 2 and data["ok"] is False and data["errors"][0]["nodes"] == ["spine1", "leaf2"]


def test_check_reads_the_flat_layout_too(tmp_path: Path) -> None:
    out = tmp_path / "configs"
    run("fabric", "render", str(DEMO), "--output-dir", str(out))
    flat = tmp_path / "flat"
    flat.mkdir()
    for node in out.iterdir():
        (flat / f"{node.name}.yaml").write_text((node / "agent.yaml").read_text())
    assert run("fabric", "check", str(DEMO), "--intents", str(flat))[0] == 0
    (flat / "leaf1").mkdir()
    (flat / "leaf1" / "agent.yaml").write_text("")
    code, _, stderr = run("fabric", "check", str(DEMO), "--intents", str(flat))
    assert code == 2 and f"leaf1: both {flat}/leaf1/agent.yaml and {flat}/leaf1.yaml exist: keep one" in stderr


def test_check_arguments() -> None:
    code, _, stderr = run("fabric", "check", str(DEMO), "--settings", "s.yml", "--intents", "x")
    assert code == 2 and "with --intents, leave it out" in stderr
    code, _, stderr = run("fabric", "check", "/nonexistent.clab.yml")
    assert code == 2 and stderr.startswith("/nonexistent.clab.yml: no such file (give the path of the topology file)")
    code, _, stderr = run("fabric", "check", str(DEMO), "--intents", "/nonexistent")
    assert code == 2 and "/nonexistent: is not a directory" in stderr
    assert run("fabric", "render", str(DEMO))[0] == 2  # --output-dir is required
    code, stdout, _ = run("fabric", "check", "--json", "/nonexistent.clab.yml")
    assert code == 2 and json.loads(stdout)["errors"][0]["message"].startswith("no such file")


def test_an_output_dir_that_cannot_be_made_is_a_runtime_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, stderr = run("fabric", "render", str(DEMO), "--output-dir", str(blocker / "configs"))
    assert code == 1 and stderr.startswith("tor-agent: ") and "Not a directory" in stderr


def test_help_has_examples() -> None:
    for args in (["fabric"], ["fabric", "render"], ["fabric", "check"]):
        code, stdout, _ = run(*args, "--help")
        assert code == 0 and "Example:" in stdout and "tor-agent fabric" in stdout
    assert "fabric" in run("--help")[1]


def test_the_command_line_does_not_import_the_fabric_package_until_used() -> None:
    code = "import sys, tor_agent.cli; print('tor_agent.fabric' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
