"""What each `tor-agent` command imports: a switch CPU pays for pyroute2, the OVS library and Jinja2 only in the
commands that use them (the import-time budget, counted in modules rather than seconds; bench/footprint.py
measures the seconds). Each case runs the command in a fresh interpreter and lists sys.modules at its end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tor_agent.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
LEAF = str(REPO / "examples" / "leaf1.yaml")
HEAVY = ("pyroute2", "ovs", "jinja2", "markupsafe", "unittest", "asyncio")
PROBE = """
import json, sys
from tor_agent.cli import main
try:
    main(sys.argv[1:], prog_name="tor-agent")
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def imported(*args: str) -> set[str]:
    """The modules loaded by the end of `tor-agent ARGS`."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )
    line = next((x for x in done.stderr.splitlines() if x.startswith("MODULES ")), None)
    assert line is not None, done.stderr
    return set(json.loads(line.removeprefix("MODULES ")))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_version_imports_click_and_nothing_of_tor_agent_but_the_group() -> None:
    modules = imported("--version")
    assert heavy(modules) == []
    assert sorted(m for m in modules if m.startswith("tor_agent")) == ["tor_agent", "tor_agent.cli"]
    assert "yaml" not in modules


@pytest.mark.parametrize("args", [["--help"], *([name, "--help"] for name in COMMANDS)], ids=str)
def test_help_imports_no_network_library_nor_jinja(args: list[str]) -> None:
    assert heavy(imported(*args)) == []


def test_check_loads_the_intent_without_network_libraries_nor_jinja() -> None:
    modules = imported("check", LEAF)
    assert heavy(modules) == []
    assert "tor_agent.config" in modules
    assert not [m for m in modules if m.startswith(("tor_agent.net", "tor_agent.ovs", "tor_agent.health"))]


def test_render_imports_jinja_but_no_network_library() -> None:
    modules = imported("render", LEAF)
    assert "jinja2" in modules
    assert [m for m in heavy(modules) if not m.startswith(("jinja2", "markupsafe"))] == []


def test_every_command_of_the_table_loads_and_lists_its_own_help() -> None:
    ctx = main.make_context("tor-agent", ["--help"], resilient_parsing=True)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str()
    assert main.list_commands(ctx) == sorted(COMMANDS)


def test_the_long_running_agent_imports_no_jinja_mock_asyncio_nor_openssl() -> None:
    """What `tor-agent run` loads for good (its drivers included): Jinja2 is loaded only by the rendering
    child, and nothing pulls in unittest.mock, asyncio or OpenSSL's libcrypto (3.5 MB for a hash)."""
    probe = (
        "import json, sys\n"
        "import tor_agent.cli.run, tor_agent.daemon.service, tor_agent.net.netlink, tor_agent.ovs.connection\n"
        "import tor_agent.ovs.unixctl, tor_agent.net.links, tor_agent.frr.apply\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    modules = set(json.loads(done.stdout))
    unwanted = ("jinja2", "markupsafe", "unittest", "asyncio", "_hashlib", "hashlib", "ssl", "_ssl")
    assert sorted(m for m in modules if m.split(".")[0] in unwanted) == []


def test_status_and_verify_read_the_kernel_without_pyroute2() -> None:
    """Reads are plain rtnetlink dumps (tor_agent.net.rtnl); pyroute2 is for changes only."""
    probe = "import json, sys, tor_agent.health.readers, tor_agent.net.links; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert not [m for m in json.loads(done.stdout) if m.startswith("pyroute2")]
