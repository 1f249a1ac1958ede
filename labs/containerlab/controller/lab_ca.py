#!/usr/bin/python3
"""A throw-away certificate authority for the lab: `ssl:` between switches and controllers end to end.

Usage: lab_ca.py DIR NAME [NAME ...]
Writes DIR/ca.pem and DIR/ca.key, and for every NAME a key and a certificate signed by that CA:
DIR/NAME.key, DIR/NAME.pem. Keys are EC P-256 (quick to make), certificates valid for 2 days; OVS checks
only that the peer's certificate chains to its CA (no host names), os-ken the same with --ca-cert.
Needs only the `openssl` command; the tests import `make_ca` and build a fresh CA per run.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OPENSSL_TIMEOUT_S = 30.0
DAYS = "2"
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Identity:
    """One party's files: its private key and its certificate (signed by the CA)."""

    key: Path
    cert: Path


@dataclass(frozen=True)
class LabCa:
    """The CA certificate (what each side trusts) and the identities it signed, by name."""

    cert: Path
    key: Path
    identities: dict[str, Identity]


def openssl(*args: str) -> None:
    """Run openssl; raise RuntimeError with its stderr when it fails."""
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])}: {done.stderr.strip()}")


def make_ca(directory: Path, names: list[str], ca_name: str = "ca") -> LabCa:
    """A new CA in `directory` (files `ca_name`.pem/.key) and one identity per name signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = directory / f"{ca_name}.pem", directory / f"{ca_name}.key"
    openssl("req", "-x509", *CURVE, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", DAYS,
            "-subj", f"/O=tor-agent lab/CN={ca_name}")  # fmt: skip
    identities = {}
    for name in names:
        key, cert, csr = directory / f"{name}.key", directory / f"{name}.pem", directory / f"{name}.csr"
        openssl("req", "-new", *CURVE, "-keyout", str(key), "-out", str(csr), "-subj", f"/O=tor-agent lab/CN={name}")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
                "-out", str(cert), "-days", DAYS)  # fmt: skip
        csr.unlink()
        identities[name] = Identity(key, cert)
    for path in (ca_key, *(i.key for i in identities.values())):
        path.chmod(0o600)
    return LabCa(ca_cert, ca_key, identities)


def main(argv: list[str]) -> int:
    """Make the CA and identities named on the command line."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    ca = make_ca(Path(argv[0]), argv[1:])
    print(f"CA {ca.cert}; " + ", ".join(f"{n}: {i.key}, {i.cert}" for n, i in ca.identities.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
