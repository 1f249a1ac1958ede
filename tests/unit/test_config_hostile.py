"""Hostile intent files: every input is accepted or refused with exit 2 and one bounded line per problem,
never a traceback, a hang or a memory explosion — for the intent file and every file it names.

`tor-agent check` runs as a subprocess under the issue's bounds as resource limits (2 s of CPU, 200 MiB of
address space; a wall-clock timeout only catches a hang), all cases at once to keep the suite quick.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_config import LEAF, changed, problems_of

from tor_agent.config import load, load_text
from tor_agent.config.files import MAX_BYTES
from tor_agent.errors import ConfigError

LINE_MAX = 700  # a problem line: the file name, a bounded path and a bounded message
CPU_S, MEMORY = 2, 200 << 20
HANG_S = 60  # only a hang takes this long

ALIAS_BOMB = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def leaf_text(**edits: Any) -> str:
    doc = copy.deepcopy(LEAF)
    for path, value in edits.items():
        doc = changed_doc(doc, path, value)
    return dump(doc)


def changed_doc(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target: Any = doc
    for key in parents:
        target = target[key]
    target[last] = value
    return doc


def with_key_file(tmp: Path, key_file: str) -> str:
    return leaf_text(**{"underlay.ospf.authentication": {"key_id": 1, "key_file": key_file}})


def with_ssl(tmp: Path, **files: str) -> str:
    for name, label in (("sw.key", "PRIVATE KEY"), ("sw.crt", "CERTIFICATE"), ("ca.crt", "CERTIFICATE")):
        (tmp / name).write_text(f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n")
        (tmp / name).chmod(0o600)
    ssl = {"private_key": str(tmp / "sw.key"), "certificate": str(tmp / "sw.crt"), "ca_cert": str(tmp / "ca.crt")}
    return leaf_text(**{"controllers.targets": ["ssl:203.0.113.10:6653"], "controllers.ssl": ssl | files})


def fifo(tmp: Path, name: str) -> str:
    path = tmp / name
    os.mkfifo(path)
    return str(path)


def peers(n: int) -> list[str]:
    return [str(ipaddress.IPv4Address(0xC6130000 + i)) for i in range(n)]


@dataclass(frozen=True)
class Case:
    """A hostile input: how to make the config path in `tmp`, and the exit code `check` must give."""

    make: Callable[[Path], str]
    code: int
    fragment: str  # in the output


def text_file(text: str | bytes | Callable[[], str]) -> Callable[[Path], str]:
    """The case's intent file holds `text` (made when the case runs, not when the tests are collected)."""

    def make(tmp: Path) -> str:
        path = tmp / "agent.yaml"
        content = text() if callable(text) else text
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    return make


def with_list(path: str, items: list[str]) -> Callable[[], str]:
    """LEAF's YAML with the list at `path` replaced by `items` (written directly: fast for 20 000 items)."""

    def text() -> str:
        before, after = leaf_text(**{path: ["PLACEHOLDER"]}).split("- PLACEHOLDER\n")
        indent = before[before.rindex("\n") + 1 :]
        return before + f"\n{indent}".join(f"- {item}" for item in items) + "\n" + after

    return text


def intent_naming(make_text: Callable[[Path], str]) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        return text_file(make_text(tmp))(tmp)

    return make


CASES: dict[str, Case] = {
    "config FIFO": Case(lambda tmp: fifo(tmp, "agent.yaml"), 2, "is a FIFO, not a regular file"),
    "config /dev/zero": Case(lambda tmp: "/dev/zero", 2, "is a character device, not a regular file"),
    "config /dev/urandom": Case(lambda tmp: "/dev/urandom", 2, "is a character device, not a regular file"),
    "config too large": Case(text_file(b"#" * (MAX_BYTES + 1)), 2, "is larger than 512 KiB"),
    "key_file FIFO": Case(intent_naming(lambda tmp: with_key_file(tmp, fifo(tmp, "ospf.key"))), 2, "is a FIFO"),
    "key_file /dev/zero": Case(intent_naming(lambda tmp: with_key_file(tmp, "/dev/zero")), 2, "character device"),
    "key_file /dev/urandom": Case(intent_naming(lambda tmp: with_key_file(tmp, "/dev/urandom")), 2, "character"),
    "private_key FIFO": Case(intent_naming(lambda tmp: with_ssl(tmp, private_key=fifo(tmp, "k"))), 2, "a FIFO"),
    "ca_cert /dev/zero": Case(intent_naming(lambda tmp: with_ssl(tmp, ca_cert="/dev/zero")), 2, "character device"),
    "alias bomb in a string field": Case(
        text_file(ALIAS_BOMB + leaf_text().replace("hostname: leaf1", "hostname: *a9")), 2, "node.hostname"
    ),
    "alias bomb as a list": Case(
        text_file(ALIAS_BOMB + leaf_text().replace("access_ports:\n  - eth3", "access_ports: *a9")),
        2,
        "overlay.access_ports[0]",
    ),
    "500 nested [": Case(text_file("[" * 500), 2, "nested more than 32 levels deep"),
    "200 000 nested {": Case(text_file("{" * 200_000), 2, "nest"),  # newer libyaml stops at 1000 itself
    "5000-digit integer": Case(text_file(leaf_text().replace("key: 100", "key: " + "7" * 5000)), 2, "tunnels.key"),
    "20 000 peers": Case(text_file(with_list("overlay.tunnels.peers", peers(20_000))), 0, "ok"),
    "20 000 peers listed twice": Case(
        text_file(with_list("overlay.tunnels.peers", peers(10_000) * 2)), 2, "is listed twice"
    ),
    "9 000 overlapping uplinks": Case(
        text_file(with_list("underlay.uplinks", [f"{{name: e{i}, address: 198.18.1.1/31}}" for i in range(9_000)])),
        2,
        "overlaps underlay.uplinks[0]",
    ),
    "60 000 values": Case(text_file(with_list("overlay.tunnels.peers", ["0"] * 60_000)), 2, "more than 50000 values"),
    "49 000 bad peers": Case(
        text_file(with_list("overlay.tunnels.peers", ["0"] * 49_000)), 2, "stopped after 1000 problems"
    ),
    "Unicode digit port": Case(
        text_file(leaf_text(**{"controllers.targets": ["tcp:203.0.113.10:²"]})), 2, "port '²' is out of range"
    ),
}


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


@dataclass(frozen=True)
class Checked:
    config: str
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Checked]]:
    """`tor-agent check` on every case, all running at once."""
    started = {}
    for name, case in CASES.items():
        config = case.make(tmp_path_factory.mktemp("hostile"))
        argv = [sys.executable, "-c", "from tor_agent.cli import main; main()", "check", config]
        pipe = subprocess.PIPE
        started[name] = (config, subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, preexec_fn=_limits))
    results = {}
    deadline = time.monotonic() + HANG_S
    for name, (config, proc) in started.items():
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n(hung: killed after {HANG_S} s)"
        results[name] = Checked(config, proc.returncode, out, err)
    yield results


@pytest.mark.parametrize("name", list(CASES))
def test_check_answers_within_bounds(name: str, checked: dict[str, Checked]) -> None:
    case, got = CASES[name], checked[name]
    assert got.code == case.code, got
    assert "Traceback" not in got.err
    lines = (got.out + got.err).splitlines()
    assert case.fragment in got.out + got.err, lines[:5]
    assert all(line.startswith(got.config) and len(line) <= LINE_MAX for line in lines), lines[:5]


# --- in process: YAML that used to crash the loader -------------------------------------------------


HOSTILE_YAML = {
    "complex key": ("? [a]\n: 1\n", "line 1, column 3", "a key must be a plain value"),
    "invalid timestamp": ("x: 2024-02-30\n", "x", "unknown key"),
    "!!int abc": ("version: !!int abc\n", "line 1, column 10", "'abc' is not an integer"),
    "!!float abc": ("version: !!float abc\n", "line 1, column 10", "'abc' is not a number"),
    "!!bool abc": ("version: !!bool abc\n", "line 1, column 10", "'abc' is not true or false"),
    "!!timestamp abc": ("version: !!timestamp abc\n", "version", "'abc' is not supported (allowed: 1)"),
    "merge key": ("a: &a {version: 1}\n<<: *a\n", "line 2, column 1", "merge keys (<<) are not supported"),
    "set as key": ("? !!set {a}\n: 1\n", "line 1, column 3", "a key must be a plain value"),
    "unhashable key": ("x: !!set {? [a]}\n", "line 1, column 13", "a key must be a plain value"),
    "NUL character": ("version: 1\x00\n", "line 1", "character #x0000 is not allowed"),
}


@pytest.mark.parametrize("name", list(HOSTILE_YAML))
def test_yaml_that_crashed_the_loader_is_a_problem(name: str) -> None:
    text, path, fragment = HOSTILE_YAML[name]
    with pytest.raises(ConfigError) as e:
        load_text(text, "x.yaml")
    assert any(p.path == path and fragment in p.message for p in e.value.problems), e.value.problems


@pytest.mark.parametrize(
    ("written", "meant"),
    [("010", "octal 8"), ("0100", "octal 64"), ("1:40", "base 60: 100"), ("1_000", "1000"), ("0b11", "3")],
)
def test_yaml_11_integers_are_refused_not_misread(written: str, meant: str, tmp_path: Path) -> None:
    """YAML 1.1 reads these as another number than the operator wrote; an integer field refuses them."""
    text = leaf_text().replace("cost: 10", f"cost: {written}", 1).replace("key: 100", f"key: {written}")
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(path)
    got = {p.path: p.message for p in e.value.problems}
    assert "without a leading 0" in got["underlay.uplinks[0].cost"], got
    assert got["overlay.tunnels.key"].startswith(f"must be an integer or flow, got a string '{written}'"), got
    assert "without a leading 0" in got["overlay.tunnels.key"], got


def test_a_digits_only_dpid_stays_as_written() -> None:
    """An unquoted DPID of digits with a leading zero is YAML 1.1 octal; the loader keeps the text."""
    text = re.sub(r"dpid: .*", "dpid: 0000000000000101", leaf_text())
    intent = load_text(text)
    assert intent.overlay is not None and intent.overlay.dpid == "0000000000000101"


@pytest.mark.parametrize(
    ("edit", "value", "path"),
    [
        ("node.hostname", "leaf1\n", "node.hostname"),
        ("overlay.dpid", "00000000000000a1\n", "overlay.dpid"),
        ("underlay.uplinks[0].name", "eth1\n", "underlay.uplinks[0].name"),
        ("overlay.access_ports", ["eth3\n"], "overlay.access_ports[0]"),
        ("overlay.bridge", "br-tor\n", "overlay.bridge"),
        ("controllers.targets", ["tcp:203.0.113.10:6653\n"], "controllers.targets[0]"),
        ("node.hostname", "leaf1\nhostname evil", "node.hostname"),
    ],
)
def test_names_match_in_full(edit: str, value: Any, path: str, tmp_path: Path) -> None:
    """A `$`-anchored pattern let a trailing newline through: check said ok, render or OVS broke later."""
    assert any(p == path for p, _ in problems_of(changed(edit, value), tmp_path))


def test_hostname_longer_than_frr_takes(tmp_path: Path) -> None:
    hostname = ".".join(["a" * 63] * 4)  # 255 characters: FRR refuses the hostname line
    problems = problems_of(changed("node.hostname", hostname), tmp_path)
    assert any(p == "node.hostname" and "at most 253 characters" in m for p, m in problems), problems


def test_quoted_values_are_bounded_and_on_one_line(tmp_path: Path) -> None:
    huge = "x\n" * 20_000
    doc = changed("node.hostname", huge)
    doc["underlay"][huge] = 1
    doc["overlay"]["tunnels"]["peers"] = [huge]
    problems = problems_of(doc, tmp_path)
    assert len(problems) == 3
    assert all(len(p) + len(m) < LINE_MAX and "\n" not in p + m for p, m in problems), problems


def test_a_key_file_path_with_a_nul_byte(tmp_path: Path) -> None:
    doc = changed("underlay.ospf.authentication", {"key_id": 1, "key_file": "ospf\x00.key"})
    assert problems_of(doc, tmp_path) == [
        (
            "underlay.ospf.authentication.key_file",
            f"cannot read {tmp_path}/ospf\\x00.key: is not a valid path "
            "(it contains a NUL byte) (create it holding the MD5 key, mode 0600)",
        )
    ]
