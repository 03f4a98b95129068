"""Back-office users and their server-side sessions.

A user has a role (``viewer``, ``operator``, ``admin``) that maps to the API's scopes, and may be
limited to some channels like an API client. Passwords are hashed with argon2id (argon2-cffi's
defaults, RFC 9106's second recommended profile); a hash made with older parameters is replaced
at the next good login.

A session is a random token in a cookie; the store keeps its SHA-256 only, with the CSRF token
of the session and its expiry (idle and absolute). Every login makes a new session (the id
changes: a planted cookie is worthless), and a password change or removal ends the user's
sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, Row, delete, select, update

from erpbridge.pci import has_card_number
from erpbridge.store.runs import now
from erpbridge.store.tables import ui_sessions, ui_users

__all__ = [
    "ROLES",
    "ROLE_SCOPES",
    "Role",
    "Session",
    "User",
    "UserError",
    "add_user",
    "check_password",
    "end_session",
    "end_sessions",
    "find_user",
    "list_users",
    "open_session",
    "remove_user",
    "session_by_token",
    "set_password",
    "sso_user",
]

#: A user's role; each holds what the one before holds.
Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
#: The API scopes a role holds: a viewer reads, an operator also acts on flows and deliveries,
#: an admin also changes channels, clients, users and the configuration.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "write", "operations"}),
    "admin": frozenset({"admin"}),
}
#: A session ends after this long without a request, and in any case after ``_ABSOLUTE``.
IDLE = timedelta(minutes=30)
_ABSOLUTE = timedelta(hours=12)
_MIN_PASSWORD = 10
#: Names of users signed in through SAML (``saml:<subject>``, as the API names SAML callers);
#: a local user cannot take one.
SSO_PREFIX = "saml:"
#: Their ``password_hash``: not an argon2 hash, so no password ever matches it.
_SSO_HASH = "sso:"
_hasher = PasswordHasher()
#: Verified against when the user does not exist, so that a wrong name costs the same time.
_DUMMY_HASH = _hasher.hash("erpbridge-no-such-user")


class UserError(ValueError):
    """A user cannot be added or changed as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class User:
    """A back-office user."""

    name: str
    role: Role
    #: Channels the user may see and act on; ``None``: all.
    channels: frozenset[str] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: whose it is and the token its forms must carry."""

    user: User
    csrf: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: Row[Any]) -> User:
    return User(
        name=row.name,
        role=row.role,
        channels=frozenset(orjson.loads(row.channels)) if row.channels else None,
        created_at=row.created_at,
    )


def _check_password(password: str) -> None:
    if len(password) < _MIN_PASSWORD:
        raise UserError(f"a password needs at least {_MIN_PASSWORD} characters")
    if "\x00" in password:
        raise UserError("a password must not hold a NUL character")


def add_user(
    engine: Engine, name: str, password: str, role: str, channels: set[str] | None = None
) -> User:
    """Create a user; :class:`UserError` when the name is taken or a value is wrong."""
    if not name or "\x00" in name or len(name) > 128 or name != name.strip():
        raise UserError("a user name must be 1 to 128 characters, no NUL, no outer spaces")
    if has_card_number(name):
        raise UserError("a user name may not hold a card number; choose another name")
    if name.startswith(SSO_PREFIX):
        raise UserError(f"names starting with {SSO_PREFIX!r} are those of single sign-on users")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    _check_password(password)
    at = now()
    with engine.begin() as conn:
        if conn.execute(select(ui_users.c.id).where(ui_users.c.name == name)).first():
            raise UserError(f"a user named {name!r} exists already")
        conn.execute(
            ui_users.insert().values(
                name=name,
                password_hash=_hasher.hash(password),
                role=role,
                channels=orjson.dumps(sorted(channels)).decode() if channels is not None else None,
                created_at=at,
                password_changed_at=at,
            )
        )
        row = conn.execute(select(ui_users).where(ui_users.c.name == name)).one()
    return _user(row)


def find_user(conn: Connection, name: str) -> User | None:
    """The user named ``name``, or ``None``."""
    row = conn.execute(select(ui_users).where(ui_users.c.name == name)).first()
    return _user(row) if row else None


def list_users(engine: Engine) -> list[User]:
    """Every user, by name."""
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(select(ui_users).order_by(ui_users.c.name))]


def set_password(engine: Engine, name: str, password: str) -> None:
    """Change a user's password and end their sessions; :class:`UserError` if there is none."""
    _check_password(password)
    if name.startswith(SSO_PREFIX):
        raise UserError(f"{name!r} signs in through SAML and has no password here")
    with engine.begin() as conn:
        done = conn.execute(
            update(ui_users)
            .where(ui_users.c.name == name)
            .values(password_hash=_hasher.hash(password), password_changed_at=now())
        )
        if done.rowcount == 0:
            raise UserError(f"no user named {name!r}")
        conn.execute(delete(ui_sessions).where(ui_sessions.c.user_name == name))


def sso_user(
    engine: Engine, subject: str, issuer: str, role: Role, channels: frozenset[str] | None
) -> User:
    """The user ``saml:<subject>`` signed in by ``issuer``, created or given ``role`` and
    ``channels`` as the identity provider's attributes say now (so that a role taken away at the
    IdP is gone at the next sign-in); no password matches them."""
    name = f"{SSO_PREFIX}{subject}"
    if not subject or len(name) > 128 or "\x00" in subject or has_card_number(subject):
        raise UserError(
            f"the identity provider names the user {subject[:40]!r}: a user name must be 1 to "
            f"{128 - len(SSO_PREFIX)} characters, without NUL or a card number"
        )
    values = {
        "role": role,
        "channels": orjson.dumps(sorted(channels)).decode() if channels is not None else None,
        "password_hash": f"{_SSO_HASH}{issuer}"[:255],
    }
    at = now()
    with engine.begin() as conn:
        found = conn.execute(select(ui_users.c.id).where(ui_users.c.name == name)).first()
        if found is None:
            conn.execute(
                ui_users.insert().values(name=name, created_at=at, password_changed_at=at, **values)
            )
        else:
            conn.execute(update(ui_users).where(ui_users.c.id == found.id).values(**values))
        row = conn.execute(select(ui_users).where(ui_users.c.name == name)).one()
    return _user(row)


def remove_user(engine: Engine, name: str) -> bool:
    """Remove a user and their sessions; False when there was none."""
    with engine.begin() as conn:
        conn.execute(delete(ui_sessions).where(ui_sessions.c.user_name == name))
        return conn.execute(delete(ui_users).where(ui_users.c.name == name)).rowcount > 0


def check_password(engine: Engine, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs, else ``None`` (in about the same time either way)."""
    with engine.connect() as conn:
        row = conn.execute(select(ui_users).where(ui_users.c.name == name)).first()
    stored = row.password_hash if row else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(
                update(ui_users)
                .where(ui_users.c.name == name)
                .values(password_hash=_hasher.hash(password))
            )
    return _user(row)


def open_session(engine: Engine, user: User, address: str | None) -> tuple[str, Session]:
    """A new session for ``user``: the cookie's token (never stored) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    at = now()
    expires = at + IDLE
    with engine.begin() as conn:
        conn.execute(delete(ui_sessions).where(ui_sessions.c.expires_at < at))
        conn.execute(
            ui_sessions.insert().values(
                digest=_digest(token),
                user_name=user.name,
                csrf=csrf,
                address=address,
                created_at=at,
                seen_at=at,
                expires_at=expires,
            )
        )
    return token, Session(user, csrf, expires)


def session_by_token(engine: Engine, token: str) -> Session | None:
    """The live session of a cookie's token (its idle expiry moved on), or ``None``."""
    at = now()
    digest = _digest(token)
    query = (
        select(ui_sessions, ui_users)
        .join(ui_users, ui_users.c.name == ui_sessions.c.user_name)
        .where(ui_sessions.c.digest == digest, ui_sessions.c.expires_at >= at)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=at.tzinfo)
    expires = min(at + IDLE, created + _ABSOLUTE)
    if expires <= at:
        return None
    with engine.begin() as conn:
        conn.execute(
            update(ui_sessions)
            .where(ui_sessions.c.digest == digest)
            .values(seen_at=at, expires_at=expires)
        )
    return Session(_user(row), row.csrf, expires)


def end_session(engine: Engine, token: str) -> None:
    """Log a session out (its row goes)."""
    with engine.begin() as conn:
        conn.execute(delete(ui_sessions).where(ui_sessions.c.digest == _digest(token)))


def end_sessions(engine: Engine, name: str) -> int:
    """End every session of user ``name``; how many there were."""
    with engine.begin() as conn:
        return conn.execute(delete(ui_sessions).where(ui_sessions.c.user_name == name)).rowcount
