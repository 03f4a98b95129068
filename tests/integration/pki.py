"""A throwaway certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1
and client certificates by common name, all made at test time with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Pki", "make_pki"]


@dataclass
class Pki:
    """Paths of the PEM files: the CA, the server's pair, and ``clients[cn]`` pairs."""

    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    _ca: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None

    def client(self, common_name: str) -> tuple[Path, Path]:
        """A client certificate and key for ``common_name``, signed by the CA."""
        if common_name not in self.clients:
            assert self._ca is not None
            pair = _issue(common_name, self._ca, server=False)
            self.clients[common_name] = _write(self.folder / f"client-{common_name}", *pair)
        return self.clients[common_name]


def make_pki(folder: Path) -> Pki:
    """A CA and a server certificate for 127.0.0.1 in ``folder``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "erpbridge test CA")])
    ca_cert = _builder(ca_name, ca_name, ca_key, ca=True).sign(ca_key, hashes.SHA256())
    ca_path, _ = _write(folder / "ca", ca_key, ca_cert)
    server_cert, server_key = _write(
        folder / "server", *_issue("127.0.0.1", (ca_name, ca_key), True)
    )
    return Pki(folder, ca_path, server_cert, server_key, _ca=(ca_name, ca_key))


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )


def _issue(
    common_name: str, ca: tuple[x509.Name, ec.EllipticCurvePrivateKey], server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = _builder(subject, ca[0], key, ca=False)
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(ca[1], hashes.SHA256())


def _write(
    path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> tuple[Path, Path]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".pem")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
