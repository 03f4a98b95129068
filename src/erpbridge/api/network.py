"""Where a request comes from, and whether that address may call at all.

The client address is the TCP peer, unless the peer is one of ``hub.api.trusted_proxies``: then
``X-Forwarded-For`` (all its lines, joined) is read from the right, skipping trusted proxies,
and the first address that is not one is the client. An ``X-Forwarded-For`` from any other
peer is ignored, so a client cannot claim an allowed address by writing the header itself. The
same goes for the scheme: ``X-Forwarded-Proto`` is believed from trusted proxies only
(:class:`ForwardedScheme`).

The server must not rewrite either before the app sees them: ``erpbridge run`` and ``erpbridge
api`` start uvicorn with ``proxy_headers=False`` (its default believes 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from erpbridge.config.api import Network

__all__ = ["ForwardedScheme", "IpAddress", "allowed", "client_address"]

IpAddress = IPv4Address | IPv6Address


def client_address(request: HTTPConnection, trusted: Sequence[Network]) -> IpAddress | None:
    """The calling client's address, believing ``X-Forwarded-For`` only from trusted proxies."""
    peer = _parse(request.client.host if request.client else None)
    if peer is None or not _inside(peer, trusted):
        return peer
    hops = _values(request.headers, "x-forwarded-for")
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return peer  # a garbled chain: trust only what we saw ourselves
        if not _inside(address, trusted):
            return address
    return peer


class ForwardedScheme:
    """ASGI middleware: the scheme a trusted proxy names in ``X-Forwarded-Proto`` (``http`` or
    ``https``, its last value) becomes the request's scheme, so that redirects and absolute URLs
    name what the caller used. From any other peer the header is ignored."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.trusted:
            client = scope.get("client")
            peer = _parse(client[0] if client else None)
            if peer is not None and _inside(peer, self.trusted):
                named = _values(Headers(scope=scope), "x-forwarded-proto")
                proto = named[-1].lower() if named else ""
                if proto in ("http", "https"):
                    scope = {**scope, "scheme": proto}
        await self.app(scope, receive, send)


def allowed(address: IpAddress | None, networks: Sequence[Network] | None) -> bool:
    """True when no list is set, or ``address`` lies in one of ``networks``."""
    if networks is None:
        return True
    return address is not None and _inside(address, networks)


def _values(headers: Headers, name: str) -> list[str]:
    """The comma-separated values of every ``name`` header line, in order (RFC 9110 5.3).

    A proxy such as HAProxy appends its own ``X-Forwarded-For`` line below the one the client
    wrote: reading only the first line would believe the client's."""
    return [v.strip() for line in headers.getlist(name) for v in line.split(",") if v.strip()]


def _inside(address: IpAddress, networks: Sequence[Network]) -> bool:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def _parse(value: str | None) -> IpAddress | None:
    if not value:
        return None
    try:
        return ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
