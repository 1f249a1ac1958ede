"""The daemon's renderer (tor_agent.render.isolated): the same text as render_frr, rendered in a child process so
that the long-running agent never imports Jinja2, once per intent."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tor_agent.config import load
from tor_agent.render import TemplateError, render_frr, template_dir
from tor_agent.render.isolated import ChildRenderer, render_in_child

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "intent.yaml").is_file())


@pytest.mark.parametrize("case", CASES)
def test_child_renders_what_render_frr_renders(case: str) -> None:
    intent = load(GOLDEN / case / "intent.yaml")
    assert render_in_child(intent, template_dir()) == render_frr(intent)


def test_the_rendering_process_never_imports_jinja() -> None:
    probe = (
        "import sys\n"
        "from tor_agent.config import load\n"
        "from tor_agent.render.isolated import ChildRenderer\n"
        f"text = ChildRenderer()(load({str(GOLDEN / CASES[0] / 'intent.yaml')!r}))\n"
        "assert 'router ospf' in text, text\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jinja2', 'markupsafe'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_an_intent_is_rendered_once_and_a_changed_one_again() -> None:
    renderer = ChildRenderer()
    intent = load(GOLDEN / "leaf-1-uplink" / "intent.yaml")
    first = renderer(intent)
    assert renderer(load(GOLDEN / "leaf-1-uplink" / "intent.yaml")) == first
    assert renderer.renders == 1
    renamed = dataclasses.replace(intent, node=dataclasses.replace(intent.node, hostname="leaf9"))
    assert "hostname leaf9" in renderer(renamed)
    assert renderer.renders == 2


def test_a_changed_template_is_rendered_again(tmp_path: Path) -> None:
    renderer = ChildRenderer()
    intent = load(GOLDEN / "spine-minimal" / "intent.yaml")
    template = tmp_path / "frr.conf.j2"
    template.write_text("hostname {{ view.hostname }}\n", encoding="utf-8")
    assert renderer(intent, tmp_path) == f"hostname {intent.node.hostname}\n"
    template.write_text("! changed\nhostname {{ view.hostname }}\n", encoding="utf-8")
    os.utime(template, ns=(0, 1))  # a distinct mtime even on a coarse clock
    assert renderer(intent, tmp_path).startswith("! changed")


def test_template_error_in_the_child_is_raised_here_naming_the_directory(tmp_path: Path) -> None:
    (tmp_path / "frr.conf.j2").write_text("{{ view.no_such_field }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=str(tmp_path)) as info:
        ChildRenderer()(load(GOLDEN / "spine-minimal" / "intent.yaml"), tmp_path)
    assert info.value.directory == tmp_path
