"""Each intent field is declared once (tor_agent/config/schema.py): the reader, docs/config.md's tables, the
JSON Schema and the keeper's defaults all come from the declarations, and agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_cli import run
from test_config import problems_of, write_pem

from tor_agent.config import Intent, load
from tor_agent.config import docs as config_docs
from tor_agent.config.declare import default_of, is_section, list_item, optional, yaml_fields
from tor_agent.config.describe import intent_json_schema, section_class
from tor_agent.config.schema import Controllers
from tor_agent.health.controllers import DEFAULT_GRACE_S
from tor_agent.reconcile.controllers import KeepaliveSettings

REPO = Path(__file__).resolve().parents[2]
INTENTS = sorted([*REPO.glob("examples/*.yaml"), *REPO.glob("labs/containerlab/configs*/*.yaml")])


def sections(cls: type = Intent, path: str = "") -> list[tuple[str, type]]:
    """Every declared section with its dotted path ("underlay.uplinks[]" for list items)."""
    found = [(path, cls)]
    for f in yaml_fields(cls):
        tp = optional(f.type)
        item = list_item(tp)
        sub, suffix = (item, "[]") if item is not None else (tp, "")
        if is_section(sub) and f.setting.parse is None:
            found += sections(sub, f"{path}.{f.name}{suffix}".lstrip("."))
    return found


def minimal_leaf(tmp_path: Path) -> dict[str, Any]:
    """The smallest leaf intent that has every section, so every default is loaded."""
    write_pem(tmp_path / "ospf.key", "x").write_text("s3cret\n")
    ssl = {k: str(write_pem(tmp_path / k, "CERTIFICATE")) for k in ("certificate", "ca_cert")}
    ssl["private_key"] = str(write_pem(tmp_path / "private_key", "PRIVATE KEY"))
    return {
        "version": 1,
        "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
        "underlay": {
            "ospf": {"bfd": {}, "authentication": {"key_id": 1, "key_file": "ospf.key"}},
            "uplinks": [{"name": "eth1", "address": "198.18.1.1/31", "mtu": 9000}],  # the tenant's 1500 + GRE
        },
        "overlay": {"bridge": "br-tor", "tunnels": {"discover": {"ospf_prefix": "198.18.0.0/24"}}},
        "controllers": {"targets": ["ssl:203.0.113.10"], "ssl": ssl},
    }


def minimal_spine(tmp_path: Path) -> dict[str, Any]:
    """The smallest spine intent with every underlay section: an uplink with every default."""
    doc = minimal_leaf(tmp_path)
    del doc["overlay"], doc["controllers"], doc["underlay"]["uplinks"][0]["mtu"]
    doc["node"]["role"] = "spine"
    return doc


def loaded(doc: dict[str, Any], tmp_path: Path) -> Intent:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load(path)


# --- generated files are current ------------------------------------------------------------------


@pytest.mark.parametrize("name", [config_docs.CONFIG_MD, config_docs.SCHEMA_JSON])
def test_generated_docs_are_current(name: str) -> None:
    path = config_docs.DOCS / name
    assert path.read_text(encoding="utf-8") == config_docs.generated()[path], (
        f"docs/{name} is stale: run make docs (python -m tor_agent.config.docs)"
    )


def test_the_docs_have_a_table_for_every_section() -> None:
    text = (config_docs.DOCS / config_docs.CONFIG_MD).read_text(encoding="utf-8")
    assert [p for p, _ in sections()] == [m["path"] for m in config_docs._BLOCK.finditer(text)]


def test_a_hand_edit_in_a_table_is_undone() -> None:
    text = (config_docs.DOCS / config_docs.CONFIG_MD).read_text(encoding="utf-8")
    edited = text.replace(
        "| `maximum_paths` | integer | `256` (FRR's) | 1..256:", "| `maximum_paths` | integer | `64` | 1..256:"
    )
    assert edited != text and config_docs.config_md(edited) == text


# --- the JSON Schema --------------------------------------------------------------------------------


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((config_docs.DOCS / config_docs.SCHEMA_JSON).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_tor_agent_schema_prints_the_shipped_schema() -> None:
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out) == intent_json_schema()
    assert out == (config_docs.DOCS / config_docs.SCHEMA_JSON).read_text(encoding="utf-8")


@pytest.mark.parametrize("path", INTENTS, ids=[str(p.relative_to(REPO)) for p in INTENTS])
def test_example_and_lab_intents_match_the_schema(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [e.message for e in validator().iter_errors(doc)] == []
    assert load(path).node.hostname  # and the loader agrees


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        (("underlay", "ospf", "maximum_paths"), 257),
        (("underlay", "ospf", "colour"), "red"),
        (("overlay", "tunnels", "key"), "Flow"),
        (("controllers", "inactivity_probe_ms"), 1000),
        (("node", "loopback"), "198.18.0.11/24"),
        (("overlay", "protocols"), []),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(edit: tuple[str, ...], value: Any, tmp_path: Path) -> None:
    doc = minimal_leaf(tmp_path)
    target = doc
    for key in edit[:-1]:
        target = target.setdefault(key, {})
    target[edit[-1]] = value
    assert list(validator().iter_errors(doc))
    assert problems_of(doc, tmp_path)


# --- defaults and ranges agree everywhere -------------------------------------------------------------


def json_defaults(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, prop in schema.get("properties", {}).items():
        if "default" in prop:
            found.append(((*path, name), prop["default"]))
        found += json_defaults(prop, (*path, name))
        found += json_defaults(prop.get("items", {}), (*path, name, "0"))
    return found


def as_json(value: Any) -> Any:
    return [as_json(v) for v in value] if isinstance(value, tuple) else value


def test_the_schemas_defaults_are_the_loaders(tmp_path: Path) -> None:
    leaf, spine = loaded(minimal_leaf(tmp_path), tmp_path), loaded(minimal_spine(tmp_path), tmp_path)
    defaults = json_defaults(intent_json_schema())
    assert len(defaults) == 28  # every field with a plain default (not "absent", not derived)
    for path, default in defaults:
        value: Any = spine if path[0] == "underlay" else leaf
        for key in path:
            value = value[int(key)] if key.isdigit() else getattr(value, key)
        assert as_json(value) == default, path


def test_every_optional_field_has_a_default_the_docs_name() -> None:
    for path, cls in sections():
        for f in yaml_fields(cls):
            assert f.setting.doc, f"{path}.{f.name}"
            assert f.required or f.setting.default_doc or f.default is not None, f"{path}.{f.name}"


@pytest.mark.parametrize(
    ("path", "field"),
    [(p, f.name) for p, cls in sections() for f in yaml_fields(cls) if f.setting.range and not f.setting.also],
)
def test_every_declared_range_is_enforced(path: str, field: str, tmp_path: Path) -> None:
    (f,) = (f for f in yaml_fields(section_class(path)) if f.name == field)
    lo, hi = f.setting.range  # type: ignore[misc]
    for value in (lo - 1, hi + 1):
        doc = minimal_leaf(tmp_path)
        target: Any = doc
        for key in filter(None, path.split(".")):
            target = target[key.removesuffix("[]")]
            target = target[0] if key.endswith("[]") else target
        target[field] = value
        where = f"{path.replace('[]', '[0]')}.{field}".lstrip(".")
        assert (where, f"{value} is out of range (allowed: {lo}..{hi})") in problems_of(doc, tmp_path)


def test_the_keepers_defaults_are_the_declared_ones() -> None:
    settings = KeepaliveSettings(bridge="br-tor", targets=())
    assert DEFAULT_GRACE_S == default_of(Controllers, "alarm_grace_s") == 10
    assert settings.grace_s == DEFAULT_GRACE_S
    assert settings.probe_interval_s == default_of(Controllers, "probe_interval_ms") / 1000
    assert settings.max_holdoff_s == default_of(Controllers, "max_backoff_ms") / 1000


def test_config_does_not_import_model() -> None:
    code = "import json, sys, tor_agent.config, tor_agent.config.describe; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert [m for m in json.loads(done.stdout) if m.startswith(("tor_agent.model", "tor_agent.render"))] == []
