"""The `tor-agent` CLI as an operator uses it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tor_agent import __version__
from tor_agent.cli import main

REPO = Path(__file__).resolve().parents[2]
LEAF = str(REPO / "examples" / "leaf1.yaml")
SPINE = str(REPO / "examples" / "spine1.yaml")


def runner() -> CliRunner:
    """click 8.1 (Debian 12) mixes stderr into stdout unless told not to; 8.2 dropped the option."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    assert run("--version") == (0, f"tor-agent {__version__}\n", "")


def test_check_ok() -> None:
    code, out, _ = run("check", LEAF)
    assert code == 0 and out == f"{LEAF}: ok (leaf leaf1, 2 uplinks)\n"


def test_check_json_ok() -> None:
    code, out, _ = run("check", "--json", SPINE)
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["role"] == "spine" and data["router_id"] == "198.18.255.1"


def test_check_bad_file_exit_2_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = Path(LEAF).read_text().replace("role: leaf", "role: core").replace("key: 100", "key: -5")
    bad.write_text(text)
    code, out, err = run("check", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}: node.role: 'core' is not supported (allowed: leaf | spine)" in err.splitlines()
    assert f"{bad}: overlay.tunnels.key: -5 is out of range (allowed: 0..4294967295)" in err.splitlines()
    assert "Traceback" not in err


def test_check_json_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nnode: {}\n")
    code, out, _ = run("check", "--json", str(bad))
    data = json.loads(out)
    assert code == 2 and data["ok"] is False
    assert {"path": "node.hostname", "message": "is required"} in data["errors"]
    assert {"path": "underlay", "message": "is required"} in data["errors"]


def test_check_missing_file() -> None:
    code, _, err = run("check", "/nonexistent/agent.yaml")
    assert code == 2 and err.startswith("/nonexistent/agent.yaml: no such file")


def test_config_defaults_to_the_switchs_own_file_or_the_environment(tmp_path: Path) -> None:
    result = runner().invoke(main, ["check"], env={"TOR_AGENT_CONFIG": None})
    assert result.exit_code == 2 and result.stderr.startswith("/etc/tor-agent/agent.yaml: no such file")
    result = runner().invoke(main, ["check"], env={"TOR_AGENT_CONFIG": LEAF})
    assert result.exit_code == 0 and result.stdout == f"{LEAF}: ok (leaf leaf1, 2 uplinks)\n"


@pytest.mark.parametrize("command", [[], ["check"], ["render"]])
def test_help_has_example(command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0 and "Example:" in out


def test_help_documents_exit_codes() -> None:
    assert "Exit codes: 0 ok, 1 runtime failure, 2 invalid input" in run("--help")[1]


def test_render_to_stdout_and_file_agree(tmp_path: Path) -> None:
    code, out, _ = run("render", LEAF)
    assert code == 0 and "ospf router-id 198.18.0.11" in out
    target = tmp_path / "frr.conf"
    target.write_text("old")
    target.chmod(0o640)
    assert run("render", LEAF, "--output", str(target))[0] == 0
    assert target.read_text() == out
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["frr.conf"]  # no temp file left behind


def test_render_bad_input_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\n")
    target = tmp_path / "frr.conf"
    code, _, err = run("render", str(bad), "--output", str(target))
    assert code == 2 and not target.exists() and "node: is required" in err


@pytest.mark.skipif(shutil.which("tor-agent") is None, reason="tor-agent is not installed on PATH")
def test_installed_console_script() -> None:
    done = subprocess.run(["tor-agent", "check", LEAF], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
