"""The package's import graph keeps its layers (docs/design.md): no module imports a layer above its own, the
drivers never import each other, and there is no import cycle between packages."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tor_agent"

# Top to bottom; a module may import its own layer's package and anything below it.
LAYERS: list[set[str]] = [
    {"cli"},
    {"daemon"},
    {"reconcile"},
    {"health"},
    {"frr", "ovs", "net", "render"},  # the drivers (and the renderer): never each other
    {"fabric"},  # a whole fabric's intents from its topology: over the loader only
    {"model"},
    {"config"},
    {"errors", "wait", "fileio", ""},  # "" is tor_agent/__init__.py
]
DRIVERS = LAYERS[4]


def unit(module: str) -> str:
    """`tor_agent.frr.apply` -> `frr`; `tor_agent.errors` -> `errors`; `tor_agent` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(name: str) -> int:
    return next(i for i, members in enumerate(LAYERS) if name in members)


def imports() -> Iterator[tuple[str, str, int]]:
    """(importing module, imported tor_agent module, line) for every import in the package, lazy ones too."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("tor_agent", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name == "tor_agent" or name.startswith("tor_agent."):
                    yield module, name, node.lineno


def test_every_unit_has_a_layer() -> None:
    units = {unit(m) for m, _, _ in imports()} | {unit(i) for _, i, _ in imports()}
    assert units <= set().union(*LAYERS), units - set().union(*LAYERS)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [f"{m}:{line} imports {i}" for m, i, line in imports() if layer(unit(i)) < layer(unit(m))]
    assert upward == []


def test_drivers_never_import_each_other() -> None:
    across = [
        f"{m}:{line} imports {i}"
        for m, i, line in imports()
        if unit(m) in DRIVERS and unit(i) in DRIVERS and unit(m) != unit(i)
    ]
    assert across == []


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for m, i, _ in imports():
        if unit(m) != unit(i):
            edges.setdefault(unit(m), set()).add(unit(i))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = sorted(u for u in edges if reaches(u, u, {u}))
    assert cycles == []
