"""Replacing a file atomically: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o644, keep_owner: bool = False) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`.

    The new file gets `mode`; with `keep_owner`, an existing file's mode and owner are kept instead
    (frr.conf belongs to frr:frr). The temporary file never outlives a failure.
    """
    old = path.stat() if keep_owner and path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, old.st_mode & 0o7777 if old is not None else mode)
        if old is not None and os.geteuid() == 0:
            os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
