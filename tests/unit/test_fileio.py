"""Writing files: atomic replacement, symlinks at the target, and bind-mounted targets (containers, lab nodes).

The bind-mount tests mount for real, inside a private mount namespace of a child process (`unshare
--mount`): they need root and are skipped without it (under CI they fail instead).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prerequisites import skip_or_fail

from tor_agent.fileio import replace_file
from tor_agent.frr.config_file import IntegratedConfig, PersistError

RUNNING = "!\nfrr version 8.4.4\nhostname sp1\nlog file /var/log/frr/frr.log\nip route 192.0.2.64/26 Null0\n!\nend\n"
SAVED = "frr version 8.4.4\nhostname sp1\nlog file /var/log/frr/frr.log\nip route 192.0.2.64/26 Null0\n!\n"


def test_a_file_is_replaced_by_rename_with_the_mode_given(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("old\n")
    inode = path.stat().st_ino
    replace_file(path, "new\n", mode=0o600)
    assert path.read_text() == "new\n"
    assert path.stat().st_ino != inode, "not replaced by a rename"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_keep_owner_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "frr.conf"
    path.write_text("old\n")
    path.chmod(0o640)
    replace_file(path, "new\n", mode=0o644, keep_owner=True)
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_symlink_at_the_target_is_replaced_never_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not mine\n")
    elsewhere.chmod(0o600)
    path = tmp_path / "frr.conf"
    path.symlink_to(elsewhere)
    replace_file(path, "new\n", mode=0o640, keep_owner=True, backup=tmp_path / "frr.conf.sav")
    assert elsewhere.read_text() == "not mine\n"
    assert not path.is_symlink() and path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o640, "the symlink's target's mode was taken over"
    assert not (tmp_path / "frr.conf.sav").exists(), "a symlink's target was backed up as the previous file"


def test_backup_keeps_the_previous_content(tmp_path: Path) -> None:
    path, backup = tmp_path / "frr.conf", tmp_path / "frr.conf.sav"
    path.write_text("first\n")
    replace_file(path, "second\n", backup=backup)
    replace_file(path, "third\n", backup=backup)
    assert (path.read_text(), backup.read_text()) == ("third\n", "second\n")


def test_a_failure_leaves_the_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "dir"
    path.mkdir()
    with pytest.raises(IsADirectoryError):
        replace_file(path, "x\n")
    assert [p.name for p in tmp_path.iterdir()] == ["dir"]


def test_frr_conf_in_a_read_only_etc_is_not_writable(tmp_path: Path, bound: Path) -> None:
    """A read-only /etc (systemd's ProtectSystem=strict) gives EROFS too, from the temporary file."""
    root_only()
    result = in_mount_namespace(tmp_path, "config-ro-dir", RUNNING)
    assert "not tor-agent's to write" in str(result["raised"])
    assert result["content"] == "old\n" and result["left"] == ["frr.conf"]


# --- bind mounts, for real ------------------------------------------------------------------------------------


def root_only() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "needs root (mounts in a private mount namespace)"
    elif shutil.which("unshare") is None:
        reason = "needs unshare (util-linux)"
    skip_or_fail(reason, "bind-mount tests of tor_agent.fileio")


CHILD = """
import errno, json, logging, os, subprocess, sys
from pathlib import Path
from tor_agent.fileio import replace_file
from tor_agent.frr.config_file import IntegratedConfig, PersistError

case, work = sys.argv[1], Path(sys.argv[2])
etc, source = work / "etc", work / "user" / "frr.conf"
target = etc / "frr.conf"
warnings = []

class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger().addHandler(Keep())

def mount(*args):
    subprocess.run(["mount", *args], check=True, timeout=10)

out = {}
if case == "config-ro-dir":
    target.write_text("old\\n")
    mount("--bind", str(etc), str(etc))
    mount("-o", "remount,bind,ro", str(etc))
else:
    mount("--bind", str(source), str(target))
    if case.endswith("-ro"):
        mount("-o", "remount,bind,ro", str(target))
inode = target.stat().st_ino
try:
    if case.startswith("config"):
        IntegratedConfig(target).save(sys.argv[3])
    else:
        replace_file(target, "new\\n", keep_owner=True)
    out["raised"] = None
except OSError as e:
    out["raised"] = errno.errorcode[e.errno]
except PersistError as e:
    out["raised"] = str(e)
out["same_inode"] = target.stat().st_ino == inode
out["content"] = target.read_text()
out["warning"] = any(str(target) in w and "read-only" in w for w in warnings)
out["left"] = sorted(p.name for p in etc.iterdir())
print(json.dumps(out))
"""


def in_mount_namespace(tmp_path: Path, case: str, *args: str) -> dict[str, Any]:
    """Run CHILD's `case` in a private mount namespace; its findings."""
    argv = ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-c", CHILD, case, str(tmp_path)]
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


@pytest.fixture
def bound(tmp_path: Path) -> Path:
    """A user's file (work/user/frr.conf, mode 0644) and the empty file it is bound over (work/etc/frr.conf)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "user").mkdir()
    (tmp_path / "etc" / "frr.conf").write_text("")
    user = tmp_path / "user" / "frr.conf"
    user.write_text("hand-written\n")
    user.chmod(0o644)
    return user


def test_a_bind_mounted_file_is_rewritten_in_place(tmp_path: Path, bound: Path) -> None:
    root_only()
    inode = bound.stat().st_ino
    result = in_mount_namespace(tmp_path, "file")
    assert result == {"raised": None, "same_inode": True, "content": "new\n", "warning": False, "left": ["frr.conf"]}
    assert bound.read_text() == "new\n" and bound.stat().st_ino == inode
    assert bound.stat().st_mode & 0o777 == 0o644


def test_a_read_only_bind_mounted_file_is_not_written(tmp_path: Path, bound: Path) -> None:
    root_only()
    result = in_mount_namespace(tmp_path, "file-ro")
    assert result["raised"] == "EROFS" and result["content"] == "hand-written\n"
    assert result["left"] == ["frr.conf"], "a temporary file was left behind"
    assert bound.read_text() == "hand-written\n"


def test_frr_conf_bind_mounted_is_saved_in_place_with_a_backup(tmp_path: Path, bound: Path) -> None:
    root_only()
    result = in_mount_namespace(tmp_path, "config", RUNNING)
    assert result["raised"] is None and result["same_inode"] is True
    assert result["left"] == ["frr.conf", "frr.conf.sav"]
    assert bound.read_text() == SAVED
    assert (tmp_path / "etc" / "frr.conf.sav").read_text() == "hand-written\n"


def test_frr_conf_bind_mounted_read_only_is_not_writable(tmp_path: Path, bound: Path) -> None:
    """Not tor-agent's to write: the FRR driver then asks FRR to save it (tests/unit/test_frr_config_tree.py)."""
    root_only()
    result = in_mount_namespace(tmp_path, "config-ro", RUNNING)
    assert "not tor-agent's to write" in str(result["raised"]) and result["content"] == "hand-written\n"
    assert bound.read_text() == "hand-written\n"


def test_frr_conf_save_failure_other_than_read_only_still_fails(tmp_path: Path) -> None:
    with pytest.raises(PersistError, match="no-such-dir"):
        IntegratedConfig(tmp_path / "no-such-dir" / "frr.conf").save(RUNNING)


def test_frr_conf_save_keeps_owner_and_mode_and_the_previous_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = IntegratedConfig(tmp_path / "frr.conf")
    conf.path.write_text("old\n")
    conf.path.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        conf.save(RUNNING)
    assert conf.path.read_text() == SAVED and conf.backup.read_text() == "old\n"
    assert conf.path.stat().st_mode & 0o777 == 0o640
    assert caplog.records == []
