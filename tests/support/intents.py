"""Intents for the tests: a base intent document with dotted-path edits, loaded and validated.

Shared by tests/unit and tests/ovs (pyproject.toml puts tests/support on pytest's pythonpath); each test
module keeps its own base document. The module name must stay unique among the modules the tests import.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from tor_agent.config import Intent, load_text


def intent_from(base: Mapping[str, Any], /, **edits: Any) -> Intent:
    """`base` with dotted-path edits, e.g. intent_from(LEAF, **{"overlay.tunnels": {...}}); None deletes.

    `base` is never changed; the edited copy goes through YAML and `load_text`, as an intent file would.
    """
    doc = copy.deepcopy(dict(base))
    for path, value in edits.items():
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return load_text(yaml.safe_dump(doc))
