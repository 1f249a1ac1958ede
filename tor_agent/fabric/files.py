"""The fabric's directories: writing a rendering (one directory per switch), reading intents back."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tor_agent.config import Intent, load
from tor_agent.errors import ConfigError
from tor_agent.fabric.findings import Finding, Findings
from tor_agent.fabric.intents import INTENT_FILE
from tor_agent.fabric.render import Rendering
from tor_agent.fabric.topology import Topology


def write_rendering(rendering: Rendering, out_dir: Path) -> list[Finding]:
    """Write `out_dir/<node>/...` for every switch, each file atomically; notes for what is left as it was.

    Nothing else in `out_dir` is touched: files of an earlier rendering that this one no longer makes
    (a node gone from the topology, a key file no longer named) stay, with a note.
    """
    f = Findings()
    for name, node in rendering.nodes.items():
        node_dir = out_dir / name
        for rel, text in node.texts.items():
            _write(node_dir / rel, text.encode("utf-8"), 0o644)
        for rel, source in node.copies.items():
            _write(node_dir / rel, source.read_bytes(), source.stat().st_mode & 0o777)
        made = {node_dir / rel for rel in node.files}
        for path in sorted(p for p in node_dir.rglob("*") if p.is_file()):
            if path not in made:
                f.note(str(path), "was not rendered this time: left as it was", [name])
    for path in sorted(out_dir.iterdir()):
        if path.is_dir() and path.name not in rendering.nodes:
            f.note(str(path), f"is no spine or leaf of {rendering.topology.source}: left as it was")
    return f.items


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def intent_path(intents_dir: Path, name: str) -> tuple[Path | None, Finding | None]:
    """Where a switch's intent is: `DIR/<name>/agent.yaml` (as render writes it) or `DIR/<name>.yaml`."""
    nested, flat = intents_dir / name / INTENT_FILE, intents_dir / f"{name}.yaml"
    if nested.is_file() and flat.is_file():
        return None, Finding("error", name, f"both {nested} and {flat} exist: keep one", (name,))
    if nested.is_file() or flat.is_file():
        return (nested if nested.is_file() else flat), None
    return None, Finding("error", name, f"no intent: neither {nested} nor {flat} exists", (name,))


def read_intents(topo: Topology, intents_dir: Path) -> tuple[dict[str, Intent], list[str], list[Finding]]:
    """The intent of every switch of `topo` found in `intents_dir`; the switches without one; findings."""
    f = Findings()
    if not intents_dir.is_dir():
        f.error(str(intents_dir), "is not a directory (give the directory holding <node>/agent.yaml or <node>.yaml)")
        return {}, [n.name for n in topo.switches], f.items
    intents: dict[str, Intent] = {}
    unread: list[str] = []
    for node in topo.switches:
        path, problem = intent_path(intents_dir, node.name)
        if path is None:
            f.extend([problem] if problem else [])
            unread.append(node.name)
            continue
        try:
            intents[node.name] = load(path)
        except ConfigError as e:
            for p in e.problems:
                f.error(f"{path}: {p.path}" if p.path else str(path), p.message, [node.name])
            unread.append(node.name)
    return intents, unread, f.items
