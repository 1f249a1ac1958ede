"""FRR rendering: golden cases (intent.yaml -> frr.conf), checked by FRR's own parser.

Regenerate the expected files with `TOR_AGENT_REGEN_GOLDEN=1 pytest tests/unit/test_render.py`, then
read every changed frr.conf before committing it.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tor_agent.config import Intent, load
from tor_agent.errors import RuntimeFailure
from tor_agent.render import TemplateError, frr_view, render_frr, template_dir

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "intent.yaml").is_file())
REGEN = os.environ.get("TOR_AGENT_REGEN_GOLDEN") == "1"
VTYSH = shutil.which("vtysh")
needs_vtysh = pytest.mark.skipif(VTYSH is None, reason="vtysh not installed (apt install frr): FRR parser check")


def _intent(case: str) -> Intent:
    return load(GOLDEN / case / "intent.yaml")


def _render(case: str) -> str:
    """The case's rendering; a case with a `drained` file is rendered drained."""
    return render_frr(_intent(case), drained=(GOLDEN / case / "drained").exists())


def _vtysh_check(path: Path) -> subprocess.CompletedProcess[str]:
    """FRR's parser on `path`: no daemons needed; exit 0 when every line parses, 2 when one does not."""
    assert VTYSH is not None
    return subprocess.run([VTYSH, "-C", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_enough_golden_cases() -> None:
    assert len(CASES) >= 8, CASES


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    expected_path = GOLDEN / case / "frr.conf"
    rendered = _render(case)
    if REGEN:
        expected_path.write_text(rendered, encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), rendered.splitlines(keepends=True), str(expected_path), "rendered"
        )
    )
    assert rendered == expected, f"rendering differs from {expected_path}:\n{diff}"


@pytest.mark.parametrize("case", CASES)
def test_render_never_prints_none(case: str) -> None:
    assert "None" not in _render(case)


@needs_vtysh
@pytest.mark.parametrize("case", CASES)
def test_frr_parser_accepts_golden(case: str) -> None:
    result = _vtysh_check(GOLDEN / case / "frr.conf")
    assert result.returncode == 0, f"vtysh -C rejected {case}/frr.conf:\n{result.stdout}{result.stderr}"


@needs_vtysh
def test_frr_parser_check_catches_a_bad_line(tmp_path: Path) -> None:
    """Guards the test above: `vtysh -C` must really fail on a line FRR does not know."""
    bad = tmp_path / "frr.conf"
    bad.write_text("interface lo\n ip ospf no-such-command\nexit\n", encoding="utf-8")
    result = _vtysh_check(bad)
    assert result.returncode != 0
    assert "no-such-command" in result.stdout + result.stderr


def test_rendering_is_deterministic() -> None:
    for case in CASES:
        intent = _intent(case)
        assert render_frr(intent) == render_frr(_intent(case)) == render_frr(intent)


def test_missing_template_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-templates"
    with pytest.raises(TemplateError, match=str(missing)) as info:
        render_frr(_intent(CASES[0]), missing)
    assert isinstance(info.value, RuntimeFailure)


def test_missing_main_template_is_named(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"frr\.conf\.j2"):
        render_frr(_intent(CASES[0]), tmp_path)


@pytest.mark.parametrize(
    "body",
    [
        "{{ view.no_such_field }}\n",  # StrictUndefined
        "{{ view.bfd }}\n",  # None printed: spine-minimal has no BFD
        "{{ view.hostname ~ ' extra' }}\n",  # a value that would split an FRR line
    ],
)
def test_broken_template_is_refused(tmp_path: Path, body: str) -> None:
    (tmp_path / "frr.conf.j2").write_text(body, encoding="utf-8")
    with pytest.raises(TemplateError, match=str(tmp_path)):
        render_frr(_intent("spine-minimal"), tmp_path)


def test_template_dir_lookup(tmp_path: Path) -> None:
    assert template_dir({"TOR_AGENT_TEMPLATES": str(tmp_path)}) == tmp_path
    in_tree = template_dir({})
    assert in_tree == Path(__file__).resolve().parents[2] / "frr-templates"
    assert (in_tree / "frr.conf.j2").is_file()


def test_view_leaves_out_frr_defaults() -> None:
    view = frr_view(_intent("leaf-bfd-off"))
    links = view.interfaces[1:]
    assert view.bfd is None
    assert all(i.hello_interval_s is None and i.dead_interval_s is None and i.bfd_profile is None for i in links)
    assert view.ospf.reference_bandwidth_mbps is None


def test_netdev_leaf_restricts_ospf_to_the_link_address() -> None:
    view = frr_view(_intent("leaf-netdev-mixed"))
    assert [(i.name, i.area_address) for i in view.interfaces] == [
        ("lo", None),
        ("br-eth1", "198.18.1.9"),
        ("up-spine2", None),
    ]
