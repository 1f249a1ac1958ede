"""Replacing a file's content safely: atomically where the file can be replaced, in place where it cannot.

Every file tor-agent writes goes through `replace_file`: the rendered frr.conf (`render --output`), FRR's
saved configuration, the FRR ledger, the status file and the metrics textfile.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


def replace_file(
    path: Path,
    text: str,
    mode: int = 0o644,
    keep_owner: bool = False,
    owner: tuple[int, int] | None = None,
    backup: Path | None = None,
) -> None:
    """Make `text` the content of `path`, flushed to disk.

    Normally a temporary file beside `path` is written, flushed and renamed over it: readers see the old
    file or the new one, never half of one, and the temporary file never outlives a failure. A symlink at
    `path` is replaced by the new file, never written through.

    When `path` is a mount point (a file bind-mounted into a container or a lab node), no rename can
    replace it (EBUSY): then, and only then, the file is rewritten in place (truncated, written, flushed),
    as FRR's own `write memory` does; it keeps its inode, owner and mode. A read-only mount raises
    OSError(EROFS).

    The new file gets `mode` and, as root, `owner` (uid, gid); with `keep_owner`, an existing regular
    file's mode and owner are kept instead (frr.conf belongs to frr:frr). With `backup`, the previous
    content of a regular file at `path` is first saved there (replacing what was there).
    """
    old = _regular(path)
    if backup is not None and old is not None:
        _atomic(backup, path.read_bytes(), old.st_mode & 0o7777, (old.st_uid, old.st_gid))
    if keep_owner and old is not None:
        mode, owner = old.st_mode & 0o7777, (old.st_uid, old.st_gid)
    try:
        _atomic(path, text.encode(), mode, owner)
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        _in_place(path, text.encode())


def _regular(path: Path) -> os.stat_result | None:
    """`path`'s own status (a symlink is not followed) when it is a regular file, else None."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _atomic(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """A temporary file beside `path`, flushed, renamed over it; the directory flushed too."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            made = os.fstat(f.fileno())
            if owner is not None and os.geteuid() == 0 and owner != (made.st_uid, made.st_gid):
                os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _in_place(path: Path, data: bytes) -> None:
    """Rewrite the regular file at `path` (never through a symlink): truncate, write, flush."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
