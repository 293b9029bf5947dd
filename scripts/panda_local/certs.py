"""A certificate authority of the stack's own: the server's host certificate and the grid identities.

Grid clients authenticate to panda-server with an X.509 proxy (panda-client, JEDI's callbacks,
Harvester); the server trusts the CA directory in `X509_CERT_DIR` and reads the DN the TLS layer
verified. Here one CA signs everything: a host certificate for 127.0.0.1 and one end-entity
certificate per identity, each also written as a "proxy" file (certificate and key in one PEM, the
form `X509_USER_PROXY` names). The keys exist only inside the stack's directory.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.panda_local.errors import StackError

DAYS = "30"


@dataclass(frozen=True)
class Identity:
    """A grid identity: its DN (OpenSSL's /-separated form, as gridsite passes it to the server),
    the VOMS FQANs a VOMS server would have put in its proxy, and its proxy file."""

    name: str
    dn: str
    fqans: tuple
    proxy: Path


@dataclass(frozen=True)
class Authority:
    """The CA and what it signed."""

    ca_cert: Path
    ca_dir: Path          # hashed, as X509_CERT_DIR expects
    host_cert: Path
    host_key: Path
    identities: dict      # name -> Identity


def _openssl(*args: str, cwd: Path) -> str:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {done.stderr.strip()[-1000:]}")
    return done.stdout


def _subject(dn: str) -> str:
    return dn if dn.startswith("/") else "/" + dn


def make(directory: Path, identities: dict) -> Authority:
    """Create the CA, the host certificate and the `identities` ({name: (dn, fqans)}) in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
             "-days", DAYS, "-subj", "/DC=org/DC=dune-test/CN=DUNE Test CA", "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    ca_dir = directory / "certificates"
    ca_dir.mkdir()
    subject_hash = _openssl("x509", "-noout", "-subject_hash", "-in", str(ca_cert), cwd=directory).strip()
    (ca_dir / f"{subject_hash}.0").write_bytes(ca_cert.read_bytes())
    host_key, host_cert = _sign(directory, "host", "/DC=org/DC=dune-test/CN=127.0.0.1", ca_key, ca_cert,
                                extension="subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                          "extendedKeyUsage=serverAuth")
    made = {}
    for name, (dn, fqans) in identities.items():
        key, cert = _sign(directory, name, _subject(dn), ca_key, ca_cert, extension="extendedKeyUsage=clientAuth")
        proxy = directory / f"{name}.proxy.pem"
        proxy.write_bytes(cert.read_bytes() + key.read_bytes())
        proxy.chmod(0o600)
        made[name] = Identity(name=name, dn=_subject(dn), fqans=tuple(fqans), proxy=proxy)
    return Authority(ca_cert=ca_cert, ca_dir=ca_dir, host_cert=host_cert, host_key=host_key, identities=made)


def _sign(directory: Path, name: str, subject: str, ca_key: Path, ca_cert: Path, *, extension: str):
    key, csr, cert, ext = (directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem",
                           directory / f"{name}.ext")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subject,
             cwd=directory)
    ext.write_text(extension + "\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", DAYS, "-extfile", str(ext), cwd=directory)
    key.chmod(0o600)
    return key, cert
