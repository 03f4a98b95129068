"""Serving the API over HTTPS with uvicorn, optionally asking for client certificates.

With a client CA configured, the TLS handshake asks for a certificate and verifies it against that
CA (``CERT_OPTIONAL``: a client may still use a key or token instead). A verified certificate's
subject CN names the API client; :mod:`erpbridge.api.auth` looks it up like a key's client. The CN
travels in the ASGI scope under :data:`~erpbridge.api.auth.CLIENT_CERT_SCOPE_KEY`, set per
connection by :class:`CertificateProtocol`, because uvicorn does not pass the peer certificate on.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from erpbridge.api.auth import CLIENT_CERT_SCOPE_KEY

__all__ = ["CertificateProtocol", "common_name", "uvicorn_tls_options"]


def common_name(certificate: dict[str, Any] | None) -> str | None:
    """The subject CN of a certificate as ``SSLSocket.getpeercert()`` returns it."""
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class CertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol, putting a verified client certificate's CN into every scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        name = common_name(ssl_object.getpeercert()) if ssl_object is not None else None
        if name is None:
            return
        inner = self.app

        async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
            scope[CLIENT_CERT_SCOPE_KEY] = name
            await inner(scope, receive, send)

        self.app = with_certificate


def uvicorn_tls_options(cert: str | None, key: str | None, client_ca: str | None) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``: none without a certificate."""
    if not cert:
        return {}
    options: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key}
    if client_ca:
        options |= {
            "ssl_ca_certs": client_ca,
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "http": CertificateProtocol,
        }
    return options
