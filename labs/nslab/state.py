"""Per-lab state under labs/.state/<lab>/: what `up` created, so `down` can undo it even after a crash."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

LABS = Path(__file__).resolve().parents[1]
STATE_ROOT = LABS / ".state"


@dataclass
class State:
    lab: str
    topology: str
    netns: list[str] = field(default_factory=list)
    holders: dict[str, int] = field(default_factory=dict)  # node -> pid owning its mount/UTS namespaces

    @property
    def dir(self) -> Path:
        """The lab's state directory."""
        return lab_dir(self.lab)

    def save(self) -> None:
        """Write the state file (atomically: `down` may read it after a crash at any point)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(self.dir / "state.json")


def lab_dir(lab: str) -> Path:
    """labs/.state/<lab>."""
    return STATE_ROOT / lab


def node_dir(lab: str, node: str) -> Path:
    """The node's private tree on the host: labs/.state/<lab>/nodes/<node>."""
    return lab_dir(lab) / "nodes" / node


def load(lab: str) -> State | None:
    """The recorded state of `lab`, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((lab_dir(lab) / "state.json").read_text())
        return State(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove(lab: str) -> None:
    """Delete the lab's state directory."""
    shutil.rmtree(lab_dir(lab), ignore_errors=True)
