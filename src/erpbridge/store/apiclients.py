"""API clients: who may call the hub's API, with which scopes, from where, until when.

A client has one credential, ``ebk_<prefix>_<secret>``: shown once when the client is made and
stored only as a SHA-256 hash. It serves as an API key (``X-API-Key`` header) and as the OAuth 2.0
client secret (``client_id`` = the client's name) for ``POST /oauth/token``. The secret is 256
random bits, so a fast hash is enough; comparison is constant-time.

Whatever the credential (key, token, certificate, mapped identity of an identity provider), the
client behind it is checked on every request by :func:`usable_client`: a revoked or expired
client is refused at once, on every path.

Scopes form a small hierarchy (:data:`IMPLIED`): ``admin`` implies every other scope and
``write`` implies ``read``; ``events`` and ``operations`` imply nothing, so a shop that pushes
events cannot read the hub's data. :func:`narrow_scopes` gives a token the subset it asks for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network

import orjson
from sqlalchemy import Connection, Engine, Row, select, update

from erpbridge.errors import ErpbridgeError
from erpbridge.pci import has_card_number
from erpbridge.store.database import reading
from erpbridge.store.runs import now
from erpbridge.store.scopes import IMPLIED, SCOPES
from erpbridge.store.tables import api_clients

__all__ = [
    "SCOPES",
    "ApiClient",
    "ClientRefused",
    "ScopeRefused",
    "check_secret",
    "client_in",
    "create_client",
    "expand_scopes",
    "find_client",
    "list_clients",
    "narrow_scopes",
    "revoke_client",
    "usable_client",
    "verify_key",
]

_PREFIX = "ebk"
_TOUCH_EVERY = timedelta(minutes=1)

Network = IPv4Network | IPv6Network


class ClientRefused(ErpbridgeError):
    """A credential that does not open the API: unknown, wrong, revoked or expired."""


class ScopeRefused(ErpbridgeError):
    """A requested scope that is unknown or not held (OAuth ``invalid_scope``)."""


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """``scopes`` with every scope they imply (``admin`` -> all, ``write`` -> ``read``)."""
    held = set(scopes)
    for scope in list(held):
        held |= IMPLIED.get(scope, frozenset())
    return frozenset(held)


def narrow_scopes(held: Iterable[str], requested: str | None) -> frozenset[str]:
    """The scopes of a token asked for with ``requested`` (space-separated, RFC 6749 §3.3) by a
    client holding ``held``: every requested scope must be known and held, directly or implied;
    nothing requested means everything held. :class:`ScopeRefused` names the offending scopes."""
    held = frozenset(held)
    wanted = frozenset(requested.split()) if requested and requested.strip() else held
    unknown = sorted(wanted - SCOPES)
    if unknown:
        raise ScopeRefused(
            f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}"
        )
    missing = sorted(wanted - expand_scopes(held))
    if missing:
        raise ScopeRefused(f"the client does not hold {', '.join(missing)}")
    return wanted


@dataclass(frozen=True, slots=True)
class ApiClient:
    """A registered API client as the API sees it."""

    id: int
    name: str
    scopes: frozenset[str]
    #: Channels the client may touch; ``None``: all.
    channels: frozenset[str] | None
    allowed_ips: tuple[Network, ...] | None
    rate_limit: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def has(self, scope: str) -> bool:
        """True when the client holds ``scope``, directly or implied (see :data:`IMPLIED`)."""
        return scope in expand_scopes(self.scopes)


def create_client(
    engine: Engine,
    name: str,
    scopes: set[str],
    *,
    channels: set[str] | None = None,
    allowed_ips: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit: str | None = None,
) -> tuple[ApiClient, str]:
    """Register a client; return it and its credential (shown once, never stored in clear)."""
    if not name or "\x00" in name:
        raise ValueError("a client's name must not be empty nor hold a NUL character")
    if has_card_number(name):
        # The name is stored, audited and logged: like every string the hub keeps, never a PAN.
        raise ValueError("a client's name may not hold a card number; choose another name")
    unknown = scopes - SCOPES
    if unknown or not scopes:
        raise ValueError(
            f"unknown scope(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"known: {', '.join(sorted(SCOPES))}"
        )
    networks = [str(ip_network(n, strict=False)) for n in allowed_ips] if allowed_ips else None
    prefix = secrets.token_hex(6)
    key = f"{_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with engine.begin() as conn:
        if conn.execute(select(api_clients.c.id).where(api_clients.c.name == name)).first():
            raise ValueError(f"a client named {name!r} exists already")
        conn.execute(
            api_clients.insert().values(
                name=name,
                key_prefix=prefix,
                key_hash=_digest(key),
                scopes=_json(sorted(scopes)),
                channels=_json(sorted(channels)) if channels is not None else None,
                allowed_ips=_json(networks) if networks is not None else None,
                rate_limit=rate_limit,
                created_at=now(),
                expires_at=expires_at,
            )
        )
        row = _row_by_name(conn, name)
    assert row is not None  # inserted just above, in the same transaction
    return _client(row), key


def verify_key(engine: Engine, key: str) -> ApiClient:
    """The client whose credential is ``key``; :class:`ClientRefused` otherwise."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != _PREFIX:
        raise ClientRefused("malformed API key")
    with reading(engine) as conn:
        row = conn.execute(select(api_clients).where(api_clients.c.key_prefix == parts[1])).first()
    if row is None or not hmac.compare_digest(row.key_hash, _digest(key)):
        raise ClientRefused("unknown API key")
    return _usable(engine, row)


def check_secret(engine: Engine, name: str, secret: str) -> ApiClient:
    """The client ``name`` if ``secret`` is its credential (OAuth client credentials grant)."""
    with reading(engine) as conn:
        row = _row_by_name(conn, name)
    if row is None or not hmac.compare_digest(row.key_hash, _digest(secret)):
        raise ClientRefused("unknown client or wrong secret")
    return _usable(engine, row)


def usable_client(engine: Engine, name: str, credential: str) -> ApiClient:
    """The client ``name`` if it exists and is neither revoked nor expired; the credential that
    named it (``"certificate CN"``, ``"token"``, …) appears in the refusal."""
    with reading(engine) as conn:
        row = _row_by_name(conn, name)
    if row is None:
        raise ClientRefused(f"no API client named {name!r} ({credential})")
    return _usable(engine, row)


def client_in(conn: Connection, client_id: int) -> ApiClient | None:
    """The client with id ``client_id`` as the caller's transaction sees it, whatever its state
    (one read by primary key; an API process's cached key is re-checked with it)."""
    row = conn.execute(select(api_clients).where(api_clients.c.id == client_id)).first()
    return _client(row) if row is not None else None


def find_client(engine: Engine, name: str) -> ApiClient | None:
    """The client called ``name``, whatever its state."""
    with reading(engine) as conn:
        row = _row_by_name(conn, name)
    return _client(row) if row is not None else None


def list_clients(engine: Engine) -> list[ApiClient]:
    """Every client, newest first."""
    with reading(engine) as conn:
        rows = conn.execute(select(api_clients).order_by(api_clients.c.id.desc())).all()
    return [_client(r) for r in rows]


def revoke_client(engine: Engine, name: str) -> bool:
    """Revoke ``name`` for good; False when there is no such client (or it was revoked)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(api_clients)
            .where(api_clients.c.name == name, api_clients.c.revoked_at.is_(None))
            .values(revoked_at=now())
        )
    return done.rowcount == 1


def _usable(engine: Engine, row: Row[tuple[object, ...]]) -> ApiClient:
    client = _client(row)
    at = now()
    if client.revoked_at is not None:
        raise ClientRefused(f"client {client.name!r} was revoked")
    if client.expires_at is not None and client.expires_at <= at:
        raise ClientRefused(f"the credential of client {client.name!r} has expired")
    if client.last_used_at is None or at - client.last_used_at > _TOUCH_EVERY:
        # At most one write a minute per client: the hot path of every call stays read-only.
        with engine.begin() as conn:
            conn.execute(
                update(api_clients).where(api_clients.c.id == client.id).values(last_used_at=at)
            )
    return client


def _row_by_name(conn: Connection, name: str) -> Row[tuple[object, ...]] | None:
    if "\x00" in name:
        return None  # no client has one (create_client refuses it); PostgreSQL would fail on it
    return conn.execute(select(api_clients).where(api_clients.c.name == name)).first()


def _client(row: Row[tuple[object, ...]]) -> ApiClient:
    m = row._mapping
    ips = orjson.loads(m["allowed_ips"]) if m["allowed_ips"] is not None else None
    return ApiClient(
        id=m["id"],
        name=m["name"],
        scopes=frozenset(orjson.loads(m["scopes"])),
        channels=frozenset(orjson.loads(m["channels"])) if m["channels"] is not None else None,
        allowed_ips=tuple(ip_network(n) for n in ips) if ips is not None else None,
        rate_limit=m["rate_limit"],
        created_at=_aware(m["created_at"]) or now(),
        expires_at=_aware(m["expires_at"]),
        revoked_at=_aware(m["revoked_at"]),
        last_used_at=_aware(m["last_used_at"]),
    )


def _aware(value: object) -> datetime | None:
    # SQLite hands back naive datetimes; the store writes UTC everywhere.
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=now().tzinfo)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _json(value: object) -> str:
    return orjson.dumps(value).decode()
