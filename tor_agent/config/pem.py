"""What a PEM file holds, so a TLS setting that names the wrong file is refused before OVS tries it."""

from __future__ import annotations

import base64
import binascii
import re

_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_KEYS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY"})
_CERTIFICATES = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_EXPECTED = {
    "private_key": (_KEYS, "a PEM private key (-----BEGIN PRIVATE KEY-----, or RSA/EC PRIVATE KEY)"),
    "certificate": (_CERTIFICATES, "a PEM certificate (-----BEGIN CERTIFICATE-----)"),
    "ca_cert": (_CERTIFICATES, "PEM CA certificates (-----BEGIN CERTIFICATE-----)"),
}


def pem_labels(data: bytes) -> list[str]:
    """The labels of the well-formed PEM blocks in `data`, e.g. ["CERTIFICATE"]; a legacy encrypted key
    (Proc-Type: 4,ENCRYPTED) is labelled "ENCRYPTED <label>". One pass over the lines: linear time."""
    labels: list[str] = []
    label: bytes | None = None
    body: list[bytes] = []
    for line in data.splitlines():
        line = line.strip()
        begin = _BEGIN.fullmatch(line)
        if begin is not None:
            label, body = begin[1], []
        elif label is not None and line == b"-----END " + label + b"-----":
            if _decodes(body):
                encrypted = any(b"ENCRYPTED" in part for part in body if b":" in part)
                labels.append(("ENCRYPTED " if encrypted else "") + label.decode("ascii"))
            label = None
        elif label is not None:
            body.append(line)
    return labels


def _decodes(body: list[bytes]) -> bool:
    """The base64 after any RFC 1421 headers (`Name: value` lines, then a blank line) decodes."""
    encoded = [line for line in body if line and b":" not in line]
    try:
        base64.b64decode(b"".join(encoded), validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(encoded)


def pem_problem(data: bytes, kind: str) -> str | None:
    """What is wrong with `data` as the TLS file `kind` (private_key, certificate, ca_cert), or None."""
    wanted, what = _EXPECTED[kind]
    labels = pem_labels(data)
    if any(label in wanted for label in labels):
        return None
    if kind == "private_key" and any("ENCRYPTED" in label for label in labels):
        return "holds an encrypted private key: ovs-vswitchd cannot ask for its passphrase (decrypt it)"
    found = ", ".join(list(dict.fromkeys(labels))[:3]) or "no PEM block"
    return f"is not {what}: found {found}"
