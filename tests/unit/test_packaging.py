"""The Debian packaging agrees with the code: dependencies, versions, the unit, the conffile, the man page.

Cheap checks on the files in packaging/ and systemd/; tests/packaging/ builds, lints and installs the .deb.
These tests also run inside the package build (pybuild's build directory, no git checkout there).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import click
import pytest
import yaml

from tor_agent import __version__
from tor_agent.cli import main
from tor_agent.config import load
from tor_agent.net.owned import OWNED_FILE
from tor_agent.render.frr import INSTALLED_TEMPLATES, TEMPLATES_ENV

REPO = Path(__file__).resolve().parents[2]
DEBIAN = REPO / "packaging" / "deb" / "debian"
UNIT = REPO / "systemd" / "tor-agent.service"
CONFFILE = REPO / "packaging" / "agent.yaml"
INSTALLED_CONFIG = "/etc/tor-agent/agent.yaml"

# pyproject.toml dependency (normalised name) -> the Debian 12 package that provides it.
DEBIAN_PACKAGE = {
    "pyyaml": "python3-yaml",
    "jinja2": "python3-jinja2",
    "click": "python3-click",
    "pyroute2": "python3-pyroute2",
    "ovs": "python3-openvswitch",
}
# What the agent runs or talks to besides its Python libraries.
DEBIAN_TOOLS = ("frr", "openvswitch-switch", "nftables", "iproute2", "${python3:Depends}", "${misc:Depends}")
_RELATION = re.compile(
    r"^(?P<name>\$\{[A-Za-z0-9:]+\}|[a-z0-9][a-z0-9+.-]*)(?:\s*\((?P<op>[<>=]+)\s*(?P<version>[^)]+)\))?"
)


def control() -> list[dict[str, str]]:
    """debian/control as deb822 paragraphs (comments dropped, continuation lines joined)."""
    paragraphs: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", (DEBIAN / "control").read_text(encoding="utf-8")):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace():
                fields[key] += "\n" + line.strip()
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            paragraphs.append(fields)
    return paragraphs


def relations(field: str) -> dict[str, tuple[str, str] | None]:
    """A Depends-style field as {package: (operator, version) or None}; build profiles are ignored."""
    out: dict[str, tuple[str, str] | None] = {}
    for item in filter(None, (i.strip() for i in field.split(","))):
        m = _RELATION.match(item)
        assert m, f"cannot parse relation {item!r}"
        out[m["name"]] = (m["op"], m["version"].strip()) if m["op"] else None
    return out


def pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]  # type: ignore[no-any-return]


def lower_bounds() -> dict[str, str]:
    """pyproject.toml's dependencies as {normalised name: lower bound}; every one must have a `>=`."""
    bounds = {}
    for requirement in pyproject()["dependencies"]:  # type: ignore[attr-defined]
        m = re.match(r"^([A-Za-z0-9._-]+)\s*(.*)$", requirement)
        assert m, requirement
        lower = re.search(r">=\s*([0-9][0-9.]*)", m[2])
        assert lower, f"pyproject.toml: {requirement!r} needs a lower bound (the Debian 12 version)"
        bounds[re.sub(r"[-_.]+", "-", m[1]).lower()] = lower[1]
    return bounds


def version_tuple(version: str) -> tuple[int, ...]:
    """The numeric release part of a PEP 440 or Debian upstream version: '3.1.0-2' -> (3, 1, 0)."""
    release = re.match(r"^(?:\d+:)?([0-9.]+)", version)
    assert release, version
    return tuple(int(p) for p in release[1].strip(".").split("."))


def at_least(version: str, bound: str) -> bool:
    a, b = version_tuple(version), version_tuple(bound)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) >= b + (0,) * (width - len(b))


@pytest.mark.parametrize("field", ["Depends", "Build-Depends"])
def test_control_has_every_pyproject_dependency_at_its_lower_bound(field: str) -> None:
    paragraph = control()[1] if field == "Depends" else control()[0]
    declared = relations(paragraph[field])
    for name, bound in lower_bounds().items():
        assert name in DEBIAN_PACKAGE, f"pyproject.toml dependency {name}: add its Debian package to DEBIAN_PACKAGE"
        package = DEBIAN_PACKAGE[name]
        assert package in declared, f"debian/control {field}: {package} missing (pyproject.toml: {name}>={bound})"
        relation = declared[package]
        assert relation is not None and relation[0] == ">=", f"debian/control {field}: {package} needs (>= {bound})"
        assert at_least(relation[1], bound), f"debian/control {field}: {package} (>= {relation[1]}) < {name} {bound}"


def test_control_depends_on_nothing_pyproject_does_not_know() -> None:
    depends = relations(control()[1]["Depends"])
    wanted = {DEBIAN_PACKAGE[name] for name in lower_bounds()}
    python_packages = {p for p in depends if p.startswith("python3-")}
    assert python_packages == wanted, "python3-* in Depends and pyproject.toml's dependencies disagree"
    assert set(depends) - python_packages == set(DEBIAN_TOOLS)


def test_no_prometheus_dependency_without_an_import() -> None:
    imports = any("prometheus_client" in p.read_text(encoding="utf-8") for p in (REPO / "tor_agent").rglob("*.py"))
    assert ("python3-prometheus-client" in relations(control()[1]["Depends"])) == imports


def test_versions_agree() -> None:
    top = (DEBIAN / "changelog").read_text(encoding="utf-8").splitlines()[0]
    m = re.match(r"^tor-agent \((?P<upstream>[^-)]+)-(?P<revision>[^)]+)\) \S+; urgency=\w+$", top)
    assert m, f"debian/changelog: unexpected first line {top!r}"
    assert m["upstream"] == pyproject()["version"] == __version__


def test_pybuild_copies_every_top_level_path_for_the_tests() -> None:
    """The unit tests run in pybuild's build directory and read the source tree: it must all be copied there."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (inside the package build): nothing to compare with")
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    top_level = {f.split("/")[0] for f in files} - {"tor_agent"}
    listed = {line for line in (DEBIAN / "pybuild.testfiles").read_text().splitlines() if not line.startswith("#")}
    assert top_level <= listed, f"add to packaging/deb/debian/pybuild.testfiles: {sorted(top_level - listed)}"


@pytest.mark.parametrize("name", ["tor-agent.install", "tor-agent.examples", "tor-agent.docs", "tor-agent.manpages"])
def test_installed_sources_exist(name: str) -> None:
    for line in (DEBIAN / name).read_text(encoding="utf-8").splitlines():
        source = line.split()[0]
        if not source.startswith("debian/generated/"):  # made by debian/rules during the build
            assert list(REPO.glob(source)), f"debian/{name}: {source} matches nothing"


def test_rules_is_executable_and_make_deb_is_included() -> None:
    assert os.access(DEBIAN / "rules", os.X_OK)
    assert "-include packaging/deb.mk" in (REPO / "Makefile").read_text(encoding="utf-8").splitlines()


# --- the systemd unit -------------------------------------------------------------------------------


def unit() -> dict[str, dict[str, list[str]]]:
    """The unit file as {section: {key: [values]}} (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(key: str) -> str:
    values = unit()["Service"][key]
    assert len(values) == 1, f"{key} is set {len(values)} times"
    return values[0]


def test_unit_is_the_one_the_issue_asks_for() -> None:
    assert service("Type") == "notify"
    assert service("WatchdogSec")
    assert service("Restart") == "on-failure"
    assert service("ExecStart") == f"/usr/bin/tor-agent run --config {INSTALLED_CONFIG}"
    assert service("ExecReload") == "/bin/kill -HUP $MAINPID"
    after = " ".join(unit()["Unit"]["After"]).split()
    assert {"frr.service", "openvswitch-switch.service", "ovsdb-server.service", "ovs-vswitchd.service"} <= set(after)
    assert service("CapabilityBoundingSet") == "CAP_NET_ADMIN"
    assert service("ProtectSystem") == "strict"
    assert service("SupplementaryGroups").split() == ["frr", "frrvty"]
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_directories_are_the_code_s() -> None:
    assert Path("/run") / service("RuntimeDirectory") == OWNED_FILE.parent
    ledger = pytest.importorskip("tor_agent.frr.ledger")
    assert Path("/var/lib") / service("StateDirectory") == ledger.DEFAULT_STATE_DIR


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt install systemd)")
    stub = tmp_path / "tor-agent"  # verify checks that ExecStart= exists; the package is not installed here
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/bin/tor-agent", str(stub)), encoding="utf-8")
    # --man=no: the man page is not installed either (tests/packaging verifies the installed unit with it)
    done = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if UNIT.name in line]
    assert done.returncode == 0 and complaints == [], done.stdout + done.stderr


# --- the conffile -----------------------------------------------------------------------------------


def exec_condition(config: Path) -> int:
    """Run the unit's ExecCondition= against `config` instead of /etc/tor-agent/agent.yaml: its exit code."""
    argv = [str(config) if a == INSTALLED_CONFIG else a for a in shlex.split(service("ExecCondition"))]
    assert str(config) in argv, "ExecCondition= no longer reads /etc/tor-agent/agent.yaml"
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


def uncommented_example() -> str:
    """The example in the conffile, with its comment marks removed as the header tells the operator."""
    lines = CONFFILE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Example:")) + 1
    return "\n".join(line.removeprefix("#") for line in lines[start:]) + "\n"


def test_packaged_conffile_keeps_the_service_from_starting(tmp_path: Path) -> None:
    # ExecCondition= exit codes 1..254 skip the start without failing the unit (no restart loop)
    assert 1 <= exec_condition(CONFFILE) <= 254
    assert 1 <= exec_condition(tmp_path / "missing.yaml") <= 254
    configured = tmp_path / "agent.yaml"
    configured.write_text(uncommented_example(), encoding="utf-8")
    assert exec_condition(configured) == 0


def test_conffile_example_is_leaf1_and_valid(tmp_path: Path) -> None:
    text = uncommented_example()
    assert yaml.safe_load(text) == yaml.safe_load((REPO / "examples" / "leaf1.yaml").read_text(encoding="utf-8"))
    configured = tmp_path / "agent.yaml"
    configured.write_text(text, encoding="utf-8")
    assert load(configured).node.hostname == "leaf1"


# --- the man page and the bash completion -----------------------------------------------------------


def gen_manpage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_manpage", REPO / "packaging" / "gen_manpage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_man_page_lists_every_command_and_is_clean_roff(tmp_path: Path) -> None:
    page = gen_manpage().manpage(main, __version__)
    for name in main.list_commands(None):  # type: ignore[arg-type]
        assert f"\n.SS {name}\n" in page
        command = main.get_command(None, name)  # type: ignore[arg-type]
        for sub in command.list_commands(None) if isinstance(command, click.Group) else ():  # type: ignore[arg-type]
            assert f"\n.SS {name} {sub}\n" in page
    man = shutil.which("man")
    if man is None:
        pytest.skip("man not installed (apt install man-db): cannot check the roff")
    path = tmp_path / "tor-agent.1"
    path.write_text(page, encoding="utf-8")
    # the check lintian makes (groff-message)
    done = subprocess.run(
        [man, "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"},
    )
    assert done.returncode == 0 and done.stderr == ""


def test_man_page_files_are_the_code_s() -> None:
    module = gen_manpage()
    files = {path for path, _ in module.FILES}
    assert f"{INSTALLED_TEMPLATES}/" in files
    assert f"{OWNED_FILE.parent}/" in files
    assert INSTALLED_CONFIG in files
    assert TEMPLATES_ENV in dict(module.ENVIRONMENT)


def test_bash_completion_script() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from tor_agent.cli import main; main(prog_name='tor-agent')"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_TOR_AGENT_COMPLETE": "bash_source"},
    )
    assert done.returncode == 0
    assert "complete -o nosort -F _tor_agent_completion tor-agent" in done.stdout
    if shutil.which("bash"):
        syntax = subprocess.run(["bash", "-n"], input=done.stdout, capture_output=True, text=True, timeout=30)
        assert syntax.returncode == 0, syntax.stderr
