"""Persist FRR's running configuration to the integrated configuration file (/etc/frr/frr.conf).

tor-agent writes the exact running configuration it has just verified, which is what `write memory`
(`vtysh -w`) would write, without a third vtysh start on every change. Unlike vtysh, which truncates
frr.conf and rewrites it in place, the new file replaces the old one atomically, unless frr.conf is a
mount point (bind-mounted into a container), where it is rewritten in place as vtysh does. Like vtysh,
the previous file is kept as frr.conf.sav and the file keeps FRR's owner and mode (frr:frr 0640).

A frr.conf tor-agent may not write (a read-only /etc under systemd's ProtectSystem, a file of frr's
without CAP_DAC_OVERRIDE, a `:ro` bind mount) raises NotWritable: the FRR driver then has FRR save it
itself (`write memory`, which watchfrr carries out), and when that fails too, warns and lets the apply stand.
"""

from __future__ import annotations

import errno
import grp
import logging
import pwd
from dataclasses import dataclass
from pathlib import Path

from tor_agent.errors import RuntimeFailure
from tor_agent.fileio import replace_file

DEFAULT_FRR_CONF = Path("/etc/frr/frr.conf")
_MODE = 0o640  # Debian builds FRR with --enable-configfile-mask=0640
log = logging.getLogger(__name__)


class PersistError(RuntimeFailure):
    """frr.conf could not be written; names the file."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(f"cannot save FRR's configuration to {path}: {message}")


class NotWritable(PersistError):
    """tor-agent may not write frr.conf (read-only, or not its own): FRR may still save it itself."""


_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


@dataclass(frozen=True)
class IntegratedConfig:
    """FRR's integrated configuration file at `path`."""

    path: Path = DEFAULT_FRR_CONF

    def save(self, running_text: str) -> None:
        """Make `running_text` (a `show running-config`) the file FRR loads at start.

        Raises NotWritable when tor-agent may not write it, PersistError when writing it failed otherwise.
        """
        try:
            replace_file(
                self.path, file_text(running_text), _MODE, keep_owner=True, owner=_frr_owner(), backup=self.backup
            )
        except OSError as e:
            if e.errno in _NOT_WRITABLE:
                raise NotWritable(self.path, f"{e.strerror or e} (not tor-agent's to write)") from e
            raise PersistError(self.path, str(e)) from e

    @property
    def backup(self) -> Path:
        """Where the previous file is kept: frr.conf.sav, as vtysh keeps it."""
        return self.path.with_name(f"{self.path.name}.sav")


def file_text(running_text: str) -> str:
    """The frr.conf text for a running configuration: as `vtysh -w` writes it (no leading `!`, no `end`)."""
    lines = running_text.splitlines()
    while lines and lines[0].strip() in ("", "!"):
        lines.pop(0)
    while lines and lines[-1].strip() in ("", "end"):
        lines.pop()
    return "".join(f"{line}\n" for line in lines)


def _frr_owner() -> tuple[int, int] | None:
    """FRR's user and group, for a new frr.conf (None where there is no such user)."""
    try:
        return pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid
    except KeyError:
        return None
