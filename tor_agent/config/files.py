"""Reading the intent file and the files it names: regular files only, never more than a size limit.

A FIFO would block a reader forever and `/dev/zero` would fill its memory, so each file is opened
without blocking, checked to be a regular file, and read up to `MAX_BYTES` (+1 to tell "too large").
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

MAX_BYTES = 512 << 10  # 20 000 static tunnel peers take 430 KB, a CA bundle about 220 KB; an intent ~2 KB

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class FileProblem(Exception):
    """A file could not be read; `str()` says why in words an operator can act on."""


@dataclass(frozen=True)
class FileData:
    """The bytes of a regular file and its permission bits."""

    data: bytes
    mode: int  # st_mode & 0o7777


def read_file(path: str, limit: int = MAX_BYTES) -> FileData:
    """The content of the regular file at `path` (symlinks followed), at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except ValueError:  # an embedded NUL byte
        raise FileProblem("is not a valid path (it contains a NUL byte)") from None
    except OSError as e:
        raise FileProblem(_why(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise FileProblem(f"is {kind}, not a regular file")
        data = _read_at_most(fd, limit + 1)
    except OSError as e:
        raise FileProblem(_why(e)) from e
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileProblem(f"is larger than {_size(limit)}")
    return FileData(data, st.st_mode & 0o7777)


def _read_at_most(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    left = n
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _why(e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (run as root or make the file readable)"
    if e.errno == errno.ELOOP:
        return "is a symlink loop"
    return f"cannot read: {e.strerror or e}"


def _size(n: int) -> str:
    return f"{n >> 10} KiB" if n % (1 << 10) == 0 else f"{n} bytes"
