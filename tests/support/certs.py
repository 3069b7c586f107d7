"""A throw-away CA, server and client certificates made with the openssl command."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertSet:
    """Paths of a CA, a server key pair for 127.0.0.1/localhost, and client key pairs by common name."""

    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if not binary:
        raise RuntimeError("openssl was not found on PATH (Debian: apt-get install openssl)")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, ext: str) -> tuple[Path, Path]:
    (directory / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
             "-out", f"{name}.csr", cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=directory)  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}.key"


def make_certs(directory: Path, clients: tuple[str, ...]) -> CertSet:
    """A CA, a server certificate and one client certificate per common name."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=test-ca", cwd=directory)  # fmt: skip
    server_cert, server_key = _signed(
        directory, "server", "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )  # fmt: skip
    made = {
        cn: _signed(directory, f"client-{cn}", f"/CN={cn}", "extendedKeyUsage=clientAuth\n") for cn in clients
    }
    return CertSet(ca=directory / "ca.pem", server_cert=server_cert, server_key=server_key, clients=made)
