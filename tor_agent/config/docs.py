"""Regenerate what the intent's declarations describe: the tables of `docs/config.md` (between its
`<!-- generated: PATH -->` and `<!-- end generated -->` markers; the prose around them is kept) and
`docs/intent.schema.json`.

    python -m tor_agent.config.docs          # write both (make docs)
    python -m tor_agent.config.docs --check  # exit 1 if either is stale
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tor_agent.config.describe import schema_json, table

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIG_MD = "config.md"
SCHEMA_JSON = "intent.schema.json"
_BLOCK = re.compile(r"(<!-- generated: (?P<path>[a-z_.\[\]]*) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def config_md(text: str) -> str:
    """`text` (docs/config.md) with every generated table replaced by the declarations' current one."""
    return _BLOCK.sub(lambda m: f"{m[1]}{table(m['path'])}\n{m[4]}", text)


def generated(docs: Path = DOCS) -> dict[Path, str]:
    """Each generated file under `docs` with the text it should have."""
    return {
        docs / CONFIG_MD: config_md((docs / CONFIG_MD).read_text(encoding="utf-8")),
        docs / SCHEMA_JSON: schema_json(),
    }


def main(argv: list[str]) -> int:
    """Write the generated files, or with --check report the stale ones (exit 1)."""
    stale = [
        path for path, text in generated().items() if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if "--check" in argv:
        for path in stale:
            print(f"{path}: stale; run python -m tor_agent.config.docs", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated().items():
        if path in stale:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
