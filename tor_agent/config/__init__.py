"""Load and validate the intent file: `load(path)` returns a frozen `Intent` or raises `ConfigError`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tor_agent.config.reader import Reader
from tor_agent.config.schema import Intent
from tor_agent.config.validate import build_intent
from tor_agent.config.yamlio import parse_yaml
from tor_agent.errors import ConfigError, Problem

__all__ = ["Intent", "load", "load_text"]


def load(path: str | Path) -> Intent:
    """Read and validate the intent file at `path`; every problem is reported at once."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source,
            [Problem("", "no such file (give the path of the intent file, e.g. /etc/tor-agent/agent.yaml)")],
        ) from None
    except IsADirectoryError:
        raise ConfigError(source, [Problem("", "is a directory, not an intent file")]) from None
    except PermissionError:
        raise ConfigError(source, [Problem("", "permission denied (run as root or make the file readable)")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(source, [Problem("", f"cannot read: {e}")]) from e
    return load_text(text, source, Path(path).resolve().parent)


def load_text(text: str, source: str = "<text>", base_dir: Path | None = None) -> Intent:
    """Validate intent YAML `text`; `source` names it in errors, relative paths resolve under `base_dir`."""
    doc, problems = parse_yaml(text)
    if problems:
        raise ConfigError(source, problems)
    if doc is None:
        raise ConfigError(source, [Problem("", "is empty (an intent file needs at least version, node and underlay)")])
    reader = Reader()
    intent = build_intent(doc, base_dir or Path.cwd(), reader)
    if reader.problems or intent is None:
        raise ConfigError(source, reader.problems or [Problem("", "is not a valid intent")])
    return dataclasses.replace(intent, source=source)
