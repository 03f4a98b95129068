"""Secrets at rest: channel credentials and JWT signing keys, encrypted with Fernet.

The key comes from ``ERPBRIDGE_SECRET_KEY`` (one or more Fernet keys, comma-separated: the first
encrypts, all decrypt — that is how a key is rotated), else from the file named by
``ERPBRIDGE_SECRET_KEY_FILE``, else from ``erpbridge.key`` beside the configuration, created on
first use with mode 0600. :func:`rotate` re-encrypts every stored secret with the first key, after
which the old keys can be dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection, select, update

from erpbridge.errors import FatalError
from erpbridge.store.runs import now
from erpbridge.store.tables import channel_secrets, signing_keys

__all__ = ["SecretBox", "SecretKeyError", "channel_credentials", "rotate", "store_credential"]

KEY_ENV = "ERPBRIDGE_SECRET_KEY"
KEY_FILE_ENV = "ERPBRIDGE_SECRET_KEY_FILE"


class SecretKeyError(FatalError):
    """The hub's secret key is missing, malformed, or does not open a stored secret."""


class SecretBox:
    """Encrypts and decrypts with the hub's key(s); the first key encrypts."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no secret key given")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise SecretKeyError(
                f"a secret key is not a Fernet key (32 url-safe base64 bytes): {exc}"
            ) from None

    @classmethod
    def from_environment(cls, base_dir: Path, env: Mapping[str, str] | None = None) -> SecretBox:
        """The key from the environment, a key file, or ``erpbridge.key`` (made when missing)."""
        env = os.environ if env is None else env
        if env.get(KEY_ENV):
            return cls([k.strip().encode() for k in env[KEY_ENV].split(",") if k.strip()])
        path = Path(env[KEY_FILE_ENV]) if env.get(KEY_FILE_ENV) else base_dir / "erpbridge.key"
        if not path.exists() and not env.get(KEY_FILE_ENV):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
        try:
            lines = path.read_bytes().split()
        except OSError as exc:
            raise SecretKeyError(
                f"cannot read the secret key file {path}: {exc.strerror}"
            ) from None
        return cls(lines)

    def encrypt(self, plain: str) -> str:
        """``plain`` encrypted and authenticated, as text."""
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, token: str, what: str) -> str:
        """The clear text of ``token``; ``what`` names it in the error (never the value)."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"{what} cannot be decrypted with the configured secret key(s): "
                f"was {KEY_ENV} changed without keeping the old key?"
            ) from None

    def rotate_token(self, token: str, what: str) -> str:
        """``token`` re-encrypted with the first key; ``what`` names it in the error."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(
                f"{what} cannot be decrypted with any configured secret key: keep the old key "
                f"in {KEY_ENV} (after the new one) while rotating"
            ) from None


def store_credential(conn: Connection, box: SecretBox, channel: str, name: str, value: str) -> None:
    """Store (or replace) one credential of ``channel``, encrypted."""
    table = channel_secrets
    cipher = box.encrypt(value)
    found = conn.execute(
        select(table.c.name).where(table.c.channel == channel, table.c.name == name)
    ).first()
    if found:
        conn.execute(
            update(table)
            .where(table.c.channel == channel, table.c.name == name)
            .values(ciphertext=cipher, updated_at=now())
        )
    else:
        conn.execute(
            table.insert().values(channel=channel, name=name, ciphertext=cipher, updated_at=now())
        )


def channel_credentials(conn: Connection, box: SecretBox, channel: str) -> dict[str, str]:
    """The stored credentials of ``channel``, decrypted."""
    rows = conn.execute(
        select(channel_secrets.c.name, channel_secrets.c.ciphertext).where(
            channel_secrets.c.channel == channel
        )
    )
    return {
        name: box.decrypt(cipher, f"credential {name!r} of channel {channel!r}")
        for name, cipher in rows
    }


def rotate(conn: Connection, box: SecretBox) -> int:
    """Re-encrypt every stored secret with the first key; return how many were rewritten."""
    count = 0
    for channel, name, cipher in conn.execute(
        select(channel_secrets.c.channel, channel_secrets.c.name, channel_secrets.c.ciphertext)
    ).all():
        conn.execute(
            update(channel_secrets)
            .where(channel_secrets.c.channel == channel, channel_secrets.c.name == name)
            .values(ciphertext=box.rotate_token(cipher, f"credential {name!r} of {channel!r}"))
        )
        count += 1
    for kid, cipher in conn.execute(select(signing_keys.c.kid, signing_keys.c.private_key)).all():
        conn.execute(
            update(signing_keys)
            .where(signing_keys.c.kid == kid)
            .values(private_key=box.rotate_token(cipher, f"signing key {kid}"))
        )
        count += 1
    return count
