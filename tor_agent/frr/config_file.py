"""Persist FRR's running configuration to the integrated configuration file (/etc/frr/frr.conf).

tor-agent writes the exact running configuration it has just verified, which is what `write memory`
(`vtysh -w`) would write, without a third vtysh start on every change. Unlike vtysh, which truncates
frr.conf and rewrites it in place, the new file replaces the old one atomically; like vtysh, the
previous file is kept as frr.conf.sav and the file keeps FRR's owner and mode (frr:frr 0640).
"""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tor_agent.errors import RuntimeFailure

DEFAULT_FRR_CONF = Path("/etc/frr/frr.conf")
_MODE = 0o640  # Debian builds FRR with --enable-configfile-mask=0640


class PersistError(RuntimeFailure):
    """frr.conf could not be written; names the file."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"cannot save FRR's configuration to {path}: {message}")


@dataclass(frozen=True)
class IntegratedConfig:
    """FRR's integrated configuration file at `path`."""

    path: Path = DEFAULT_FRR_CONF

    def save(self, running_text: str) -> None:
        """Make `running_text` (a `show running-config`) the file FRR loads at start."""
        try:
            self._save(file_text(running_text))
        except OSError as e:
            raise PersistError(self.path, str(e)) from e

    def _save(self, text: str) -> None:
        uid, gid, mode = _owner(self.path)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fchown(f.fileno(), uid, gid)
                os.fsync(f.fileno())
            if self.path.exists():
                backup = self.path.with_name(f"{self.path.name}.sav")
                backup.unlink(missing_ok=True)
                os.link(self.path, backup)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)


def file_text(running_text: str) -> str:
    """The frr.conf text for a running configuration: as `vtysh -w` writes it (no leading `!`, no `end`)."""
    lines = running_text.splitlines()
    while lines and lines[0].strip() in ("", "!"):
        lines.pop(0)
    while lines and lines[-1].strip() in ("", "end"):
        lines.pop()
    return "".join(f"{line}\n" for line in lines)


def _owner(path: Path) -> tuple[int, int, int]:
    """The owner and mode to keep: the existing file's, else FRR's user and group."""
    if path.exists():
        st = path.stat()
        return st.st_uid, st.st_gid, st.st_mode & 0o7777
    try:
        return pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid, _MODE
    except KeyError:
        return os.getuid(), os.getgid(), _MODE


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
