"""Secrets and TLS: private keys others can read are warned about, TLS files must be PEM of the right
kind, and `render --output` never hands a rendering with the OSPF key to someone else's file or mode."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import run
from test_config import changed, problems_of, write_pem

from tor_agent.config import Intent, load
from tor_agent.errors import Problem

KEY_FILE = "underlay.ospf.authentication.key_file"


def with_key_file(tmp_path: Path, mode: int) -> Path:
    """An intent file in `tmp_path` whose OSPF key file has `mode`."""
    key = tmp_path / "ospf.key"
    key.write_text("s3cret\n")
    key.chmod(mode)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(changed("underlay.ospf.authentication", {"key_id": 1, "key_file": "ospf.key"})))
    return path


def ssl_doc(tmp_path: Path, **labels: str) -> dict[str, Any]:
    kinds = {"private_key": "PRIVATE KEY", "certificate": "CERTIFICATE", "ca_cert": "CERTIFICATE"} | labels
    files = {key: str(write_pem(tmp_path / key, label)) for key, label in kinds.items()}
    doc = changed("controllers.targets", ["ssl:203.0.113.10:6653"])
    doc["controllers"]["ssl"] = files
    return doc


def load_doc(doc: dict[str, Any], tmp_path: Path) -> Intent:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load(path)


# --- private keys others can read ---------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o400, False), (0o640, True), (0o604, True)])
def test_an_ospf_key_file_others_can_read_is_a_warning(mode: int, warned: bool, tmp_path: Path) -> None:
    intent = load(with_key_file(tmp_path, mode))
    expected = [
        Problem(KEY_FILE, f"{tmp_path}/ospf.key is readable by group or others (mode {mode:04o}): chmod 600 it")
    ]
    assert list(intent.warnings) == (expected if warned else [])


def test_a_tls_key_others_can_read_is_a_warning(tmp_path: Path) -> None:
    doc = ssl_doc(tmp_path)
    os.chmod(doc["controllers"]["ssl"]["private_key"], 0o644)
    assert [w.path for w in load_doc(doc, tmp_path).warnings] == ["controllers.ssl.private_key"]


def test_warnings_are_not_compared_nor_shown(tmp_path: Path) -> None:
    intent = load(with_key_file(tmp_path, 0o644))
    assert intent.warnings and dataclasses.replace(intent, warnings=()) == intent
    assert "warnings=" not in repr(intent)


def test_check_prints_warnings(tmp_path: Path) -> None:
    path = with_key_file(tmp_path, 0o644)
    code, out, err = run("check", str(path))
    assert code == 0 and out.startswith(f"{path}: ok")
    warning = f"{tmp_path}/ospf.key is readable by group or others (mode 0644): chmod 600 it"
    assert err == f"{path}: {KEY_FILE}: warning: {warning}\n"
    code, out, _ = run("check", "--json", str(path))
    assert code == 0 and json.loads(out)["warnings"] == [
        {"path": KEY_FILE, "message": f"{tmp_path}/ospf.key is readable by group or others (mode 0644): chmod 600 it"}
    ]


def test_check_json_keeps_its_shape_on_errors(tmp_path: Path) -> None:
    path = with_key_file(tmp_path, 0o644)
    path.write_text(path.read_text().replace("role: leaf", "role: core"))
    code, out, _ = run("check", "--json", str(path))
    doc = json.loads(out)
    assert code == 2 and set(doc) == {"ok", "file", "errors", "warnings"} and doc["ok"] is False
    assert [e["path"] for e in doc["errors"]] == ["node.role"] and [w["path"] for w in doc["warnings"]] == [KEY_FILE]


# --- TLS files are PEM of the right kind ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "label", "fragment"),
    [
        (
            "private_key",
            "CERTIFICATE",
            "is not a PEM private key (-----BEGIN PRIVATE KEY-----, or RSA/EC PRIVATE KEY): found CERTIFICATE",
        ),
        (
            "private_key",
            "ENCRYPTED PRIVATE KEY",
            "holds an encrypted private key: ovs-vswitchd cannot ask for its passphrase",
        ),
        ("certificate", "PRIVATE KEY", "is not a PEM certificate (-----BEGIN CERTIFICATE-----): found PRIVATE KEY"),
        (
            "ca_cert",
            "RSA PRIVATE KEY",
            "is not PEM CA certificates (-----BEGIN CERTIFICATE-----): found RSA PRIVATE KEY",
        ),
    ],
)
def test_tls_files_of_the_wrong_kind_are_refused(key: str, label: str, fragment: str, tmp_path: Path) -> None:
    ((path, message),) = problems_of(ssl_doc(tmp_path, **{key: label}), tmp_path)
    assert path == f"controllers.ssl.{key}" and message.startswith(f"{tmp_path}/{key} {fragment}")


@pytest.mark.parametrize("content", ["", "x", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"])
def test_tls_files_that_are_not_pem_are_refused(content: str, tmp_path: Path) -> None:
    doc = ssl_doc(tmp_path)
    Path(doc["controllers"]["ssl"]["ca_cert"]).write_text(content)
    assert problems_of(doc, tmp_path) == [
        (
            "controllers.ssl.ca_cert",
            f"{tmp_path}/ca_cert is not PEM CA certificates (-----BEGIN CERTIFICATE-----): found no PEM block",
        )
    ]


def test_real_tls_files_load(tmp_path: Path) -> None:
    """Files as openssl writes them: a legacy RSA key with its headers, a certificate chain."""
    doc = ssl_doc(tmp_path, private_key="RSA PRIVATE KEY")
    chain = "".join("-----BEGIN CERTIFICATE-----\r\nQUJD\r\nREVG\r\n-----END CERTIFICATE-----\r\n" for _ in range(3))
    Path(doc["controllers"]["ssl"]["ca_cert"]).write_text("# the fabric's CAs\n" + chain)
    controllers = load_doc(doc, tmp_path).controllers
    assert controllers is not None and controllers.ssl is not None


# --- render --output ------------------------------------------------------------------------------------


SOMEONE = 4242  # a uid that is not ours: who owned the file (or a symlink's target) before


def owned_by_someone(path: Path, mode: int) -> None:
    path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(path, SOMEONE, SOMEONE)


def owner_and_mode(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_mode & 0o777


def test_a_rendering_with_the_key_is_written_0600_and_ours(tmp_path: Path) -> None:
    config = with_key_file(tmp_path, 0o600)
    target = tmp_path / "frr.conf"
    target.write_text("old")
    owned_by_someone(target, 0o644)
    assert run("render", str(config), "--output", str(target))[0] == 0
    assert "message-digest-key 1 md5 s3cret" in target.read_text()
    assert owner_and_mode(target) == (os.geteuid(), 0o600)


def test_a_rendering_without_a_key_keeps_a_regular_files_owner_and_mode(tmp_path: Path) -> None:
    """frr.conf belongs to frr:frr; rewriting it must not take it from FRR."""
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(changed("overlay.tunnels.key", 5)))
    target = tmp_path / "frr.conf"
    target.write_text("old")
    owned_by_someone(target, 0o640)
    assert run("render", str(config), "--output", str(target))[0] == 0
    assert owner_and_mode(target) == (SOMEONE if os.geteuid() == 0 else os.geteuid(), 0o640)


@pytest.mark.parametrize("keyed", [True, False])
def test_render_replaces_a_symlink_instead_of_writing_through_it(keyed: bool, tmp_path: Path) -> None:
    config = with_key_file(tmp_path, 0o600)
    if not keyed:
        config.write_text(yaml.safe_dump(changed("overlay.tunnels.key", 5)))
    victim = tmp_path / "someone-elses"
    victim.write_text("theirs")
    owned_by_someone(victim, 0o664)
    before = owner_and_mode(victim)
    link = tmp_path / "frr.conf"
    link.symlink_to(victim)
    assert run("render", str(config), "--output", str(link))[0] == 0
    assert victim.read_text() == "theirs" and owner_and_mode(victim) == before
    assert not link.is_symlink() and "router ospf" in link.read_text()
    assert owner_and_mode(link) == (os.geteuid(), 0o600 if keyed else 0o644)  # not the symlink target's
