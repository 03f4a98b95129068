"""Where a request comes from, and whether that address may call at all.

The client address is the TCP peer, unless the peer is one of ``hub.api.trusted_proxies``: then
``X-Forwarded-For`` is read from the right, skipping trusted proxies, and the first address that
is not one is the client. An ``X-Forwarded-For`` from any other peer is ignored, so a client
cannot claim an allowed address by writing the header itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from starlette.requests import HTTPConnection

from erpbridge.config.api import Network

__all__ = ["IpAddress", "allowed", "client_address"]

IpAddress = IPv4Address | IPv6Address


def client_address(request: HTTPConnection, trusted: Sequence[Network]) -> IpAddress | None:
    """The calling client's address, believing ``X-Forwarded-For`` only from trusted proxies."""
    peer = _parse(request.client.host if request.client else None)
    if peer is None or not _inside(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return peer  # a garbled chain: trust only what we saw ourselves
        if not _inside(address, trusted):
            return address
    return peer


def allowed(address: IpAddress | None, networks: Sequence[Network] | None) -> bool:
    """True when no list is set, or ``address`` lies in one of ``networks``."""
    if networks is None:
        return True
    return address is not None and _inside(address, networks)


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
