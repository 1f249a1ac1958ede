"""The .deb as an operator gets it: built by `make deb`, lintian-clean, installed with apt (so Debian's
python3-* libraries are what runs), working from / with no source tree around, and purged without
touching FRR's or Open vSwitch's configuration.

Needs root: it installs the package on this machine and purges it at the end. About a minute.
While it is installed, a venv with system site packages imports tor_agent from the package, so do not run
other test runs of this checkout on the same machine at the same time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tor_agent.config import load
from tor_agent.render import render_frr

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
DEB_DIR = REPO / "build" / "deb"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
# What an operator's shell has: no venv, no PYTHONPATH, no TOR_AGENT_* variables.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
EXAMPLE = "/usr/share/doc/tor-agent/examples/leaf1.yaml"
UNIT = Path("/lib/systemd/system/tor-agent.service")
ENABLED = Path("/etc/systemd/system/multi-user.target.wants/tor-agent.service")
OWN_DIRS = (Path("/etc/tor-agent"), Path("/var/lib/tor-agent"), Path("/run/tor-agent"))
# FRR's and Open vSwitch's configuration: the package must leave them exactly as they were.
NOT_OURS = (Path("/etc/frr"), Path("/etc/openvswitch"), Path("/var/lib/openvswitch"))
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]


def run(
    argv: list[str], timeout: float = 120, cwd: Path = Path("/"), env: Mapping[str, str] = SYSTEM_ENV
) -> subprocess.CompletedProcess[str]:
    """Run as an operator would (by default from / with the system's PATH); fails the test on a non-zero exit."""
    env = {**env, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package], capture_output=True, text=True, timeout=30
    )
    return done.returncode == 0 and done.stdout == "installed"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: installs the tor-agent package on this machine and purges it again"
    missing = [tool for tool in ("apt-get", "dpkg-query", "make", "git") if shutil.which(tool) is None]
    if missing:
        return f"not a Debian machine with the build tools: {', '.join(missing)} not found"
    if installed("tor-agent"):
        return "tor-agent is installed on this machine: the test purges what it installs and leaves yours alone"
    present = [str(d) for d in OWN_DIRS if d.exists()]
    if present:
        return f"{', '.join(present)} exists here and the test's purge would remove it"
    return None


def snapshot(roots: tuple[Path, ...]) -> dict[str, str]:
    """Every file under `roots`: its SHA-256, or the target of a symlink."""
    files: dict[str, str] = {}
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                if path.is_symlink():
                    files[str(path)] = f"-> {os.readlink(path)}"
                elif path.is_file():
                    files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


@pytest.fixture(scope="module")
def deb() -> Path:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    run(["make", "deb"], timeout=900, cwd=REPO, env=os.environ)
    debs = sorted(DEB_DIR.glob("tor-agent_*_all.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def package(deb: Path) -> Iterator[dict[str, str]]:
    """Installs the .deb; yields the snapshot of FRR's and OVS's files taken before; purges at the end."""
    before = snapshot(NOT_OURS)
    run([*APT, "install", f"./{deb.relative_to(REPO)}"], timeout=600, cwd=REPO)
    try:
        yield before
    finally:
        if installed("tor-agent"):
            run([*APT, "purge", "tor-agent"], timeout=300)


def test_lintian_has_no_errors_or_warnings(deb: Path) -> None:
    done = run(["lintian", "--fail-on", "none", str(deb)], timeout=300)
    tags = [line for line in done.stdout.splitlines() if line.startswith(("E:", "W:"))]
    assert tags == []


def test_installed_command_runs_on_debian_libraries(package: dict[str, str]) -> None:
    assert run(["/usr/bin/tor-agent", "--version"]).stdout == f"tor-agent {VERSION}\n"
    modules = "tor_agent, click, jinja2, yaml, pyroute2, ovs"
    code = f"import {modules}; print(*(m.__file__ for m in ({modules})))"
    for path in run(["/usr/bin/python3", "-c", code]).stdout.split():
        assert path.startswith("/usr/lib/python3/dist-packages/"), path


def test_check_the_installed_example(package: dict[str, str]) -> None:
    assert run(["tor-agent", "check", EXAMPLE]).stdout == f"{EXAMPLE}: ok (leaf leaf1, 2 uplinks)\n"


def test_render_uses_the_installed_templates(package: dict[str, str]) -> None:
    code = "from tor_agent.render import template_dir; print(template_dir())"
    assert run(["/usr/bin/python3", "-c", code]).stdout == "/usr/share/tor-agent/frr-templates\n"
    expected = render_frr(load(REPO / "examples" / "leaf1.yaml"), REPO / "frr-templates")
    assert run(["tor-agent", "render", EXAMPLE]).stdout == expected


def test_man_page(package: dict[str, str]) -> None:
    assert run(["man", "-w", "tor-agent"]).stdout == "/usr/share/man/man1/tor-agent.1.gz\n"
    page = run(["man", "--warnings", "tor-agent"], env={**SYSTEM_ENV, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": ""})
    assert page.stderr == "" and "EXIT STATUS" in page.stdout and "tor-agent check" in page.stdout


def test_bash_completion(package: dict[str, str]) -> None:
    script = "/usr/share/bash-completion/completions/tor-agent"
    assert "_tor_agent_completion" in run(["bash", "-c", f"source {script} && complete -p tor-agent"]).stdout
    env = {**SYSTEM_ENV, "COMP_WORDS": "tor-agent che", "COMP_CWORD": "1", "_TOR_AGENT_COMPLETE": "bash_complete"}
    assert run(["tor-agent"], env=env).stdout.split() == ["plain,check"]


def test_unit_verifies_and_is_enabled(package: dict[str, str]) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt install systemd)")
    done = run(["systemd-analyze", "verify", str(UNIT)])
    assert [line for line in (done.stdout + done.stderr).splitlines() if "tor-agent" in line] == []
    assert ENABLED.is_symlink() and os.readlink(ENABLED) == str(UNIT)


def test_conffile_keeps_the_service_from_starting(package: dict[str, str]) -> None:
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "tor-agent"]).stdout
    assert "/etc/tor-agent/agent.yaml" in conffiles
    condition = ["/bin/grep", "-qs", "^[^#[:space:]]", "/etc/tor-agent/agent.yaml"]
    assert subprocess.run(condition, timeout=30, check=False).returncode == 1
    assert f'ExecCondition={" ".join(condition[:2])} "{condition[2]}" {condition[3]}' in UNIT.read_text()


def test_purge_removes_ours_and_leaves_frr_and_ovs_alone(package: dict[str, str]) -> None:
    for state in (Path("/var/lib/tor-agent/frr-interfaces.json"), Path("/run/tor-agent/addresses.json")):
        state.parent.mkdir(exist_ok=True)  # what a running agent leaves behind
        state.write_text("{}\n")
    run([*APT, "purge", "tor-agent"], timeout=300)
    assert not installed("tor-agent")
    leftovers = [p for p in (*OWN_DIRS, UNIT, ENABLED, Path("/usr/share/tor-agent")) if p.exists() or p.is_symlink()]
    assert leftovers == []
    assert snapshot(NOT_OURS) == package
    assert installed("frr") and installed("openvswitch-switch")
