"""JWTs: the hub's own (issued by ``POST /oauth/token``) and those of external identity providers.

The hub signs with ES256 keys kept in ``signing_keys`` (private halves encrypted). The newest key
signs; when it is older than ``key_rotation_days`` a new one is made and the old one retires, but
keeps verifying until every token it signed has expired. Public keys are published at
``/.well-known/jwks.json``. Tokens of an external provider are verified against its JWKS URL (keys
cached by PyJWT) or a configured public key.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import Engine, select, update

from erpbridge.config.api import ApiSettings, IdentityProvider
from erpbridge.errors import ErpbridgeError
from erpbridge.store.runs import now
from erpbridge.store.secretbox import SecretBox
from erpbridge.store.tables import signing_keys

__all__ = ["ISSUER", "Claims", "Keyring", "TokenRefused"]

ISSUER = "erpbridge"
AUDIENCE = "erpbridge-api"
_ALGORITHM = "ES256"
_RELOAD_S = 30


class TokenRefused(ErpbridgeError):
    """A bearer token that does not open the API: malformed, expired, wrongly signed, foreign."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who, with which scopes, issued by whom."""

    subject: str
    scopes: frozenset[str]
    issuer: str
    expires_at: float
    #: The SAML identity provider that vouched for the subject (our tokens from the
    #: saml2-bearer grant); ``None`` for the token of a local client or an external provider.
    idp: str | None = None
    #: Channels the holder may touch when the token itself restricts them; ``None``: all.
    channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    private: ec.EllipticCurvePrivateKey
    public: Any
    jwk: dict[str, Any]
    created_at: float
    retired_at: float | None


class Keyring:
    """Signs the hub's tokens and verifies them, and those of configured identity providers."""

    def __init__(self, engine: Engine, box: SecretBox, settings: ApiSettings, base_dir: Path):
        self.engine, self.box, self.settings, self.base_dir = engine, box, settings, base_dir
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        self._loaded = 0.0
        self._providers = [_Provider(p, base_dir) for p in settings.identity_providers]

    def issue(
        self,
        subject: str,
        scopes: frozenset[str],
        *,
        idp: str | None = None,
        channels: frozenset[str] | None = None,
    ) -> tuple[str, int]:
        """A signed token for ``subject`` and its lifetime in seconds.

        ``idp`` and ``channels`` are for a subject that is no local client (a SAML identity):
        the IdP that vouched for it, and the channels it is restricted to (``None``: all).
        """
        key = self._signing_key()
        issued = int(time.time())
        ttl = self.settings.token_ttl_s
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "scope": " ".join(sorted(scopes)),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": secrets.token_hex(8),
        }
        if idp is not None:
            claims["idp"] = idp
            if channels is not None:
                claims["channels"] = sorted(channels)
        token = jwt.encode(claims, key.private, algorithm=_ALGORITHM, headers={"kid": key.kid})
        return token, ttl

    def verify(self, token: str) -> Claims:
        """The claims of ``token``, signed by us or a configured provider; else TokenRefused."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"malformed token: {exc}") from None
        issuer = unverified.get("iss")
        if issuer == ISSUER:
            return self._verify_own(token, header)
        for provider in self._providers:
            if provider.config.issuer == issuer:
                return provider.verify(token)
        raise TokenRefused(f"tokens of issuer {issuer!r} are not accepted")

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify the hub's tokens (current and still-valid retired)."""
        self._refresh()
        return {"keys": [k.jwk for k in self._keys.values()]}

    def _verify_own(self, token: str, header: dict[str, Any]) -> Claims:
        kid = header.get("kid")
        key = self._keys.get(str(kid))
        if key is None:  # signed by a key another process made since we last looked
            self._refresh(force=True)
            key = self._keys.get(str(kid))
        if key is None:
            raise TokenRefused("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key.public,
                algorithms=[_ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("token has expired") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"token refused: {exc}") from None
        own = _claims(claims, "scope", "sub")
        if "idp" not in claims:
            return own
        listed = claims.get("channels")
        channels = frozenset(str(c) for c in listed) if isinstance(listed, list) else None
        return replace(own, idp=str(claims["idp"]), channels=channels)

    def _signing_key(self) -> _Key:
        self._refresh()
        current = [k for k in self._keys.values() if k.retired_at is None]
        newest = max(current, key=lambda k: k.created_at, default=None)
        age_limit = self.settings.key_rotation_days * 86400
        if newest is None or time.time() - newest.created_at > age_limit:
            self._rotate()
            return self._signing_key()
        return newest

    def _rotate(self) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        kid = secrets.token_hex(8)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        jwk |= {"kid": kid, "use": "sig", "alg": _ALGORITHM}
        at = now()
        with self.engine.begin() as conn:
            conn.execute(
                update(signing_keys)
                .where(signing_keys.c.retired_at.is_(None))
                .values(retired_at=at)
            )
            conn.execute(
                signing_keys.insert().values(
                    kid=kid,
                    algorithm=_ALGORITHM,
                    private_key=self.box.encrypt(pem),
                    public_jwk=json.dumps(jwk),
                    created_at=at,
                )
            )
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._loaded < _RELOAD_S and self._keys:
                return
            # Retired keys verify for one token lifetime more, then they are of no use.
            oldest = now() - timedelta(seconds=self.settings.token_ttl_s + 60)
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(signing_keys).where(
                        signing_keys.c.retired_at.is_(None) | (signing_keys.c.retired_at > oldest)
                    )
                ).all()
            keys = {}
            for row in rows:
                pem = self.box.decrypt(row.private_key, f"signing key {row.kid}")
                private = serialization.load_pem_private_key(pem.encode(), password=None)
                assert isinstance(private, ec.EllipticCurvePrivateKey)
                keys[row.kid] = _Key(
                    row.kid,
                    private,
                    private.public_key(),
                    json.loads(row.public_jwk),
                    _epoch(row.created_at),
                    _epoch(row.retired_at) if row.retired_at else None,
                )
            self._keys = keys
            self._loaded = time.monotonic()


class _Provider:
    def __init__(self, config: IdentityProvider, base_dir: Path) -> None:
        self.config = config
        self.client = jwt.PyJWKClient(config.jwks_url) if config.jwks_url else None
        self.key: Any = None
        if config.public_key_file:
            self.key = (base_dir / config.public_key_file).read_bytes()

    def verify(self, token: str) -> Claims:
        try:
            key = self.client.get_signing_key_from_jwt(token).key if self.client else self.key
            claims = jwt.decode(
                token,
                key,
                algorithms=self.config.algorithms,
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={"require": ["exp"], "verify_aud": self.config.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("token has expired") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"token of {self.config.issuer} refused: {exc}") from None
        return _claims(claims, self.config.scope_claim, self.config.client_claim)


def _claims(claims: dict[str, Any], scope_claim: str, client_claim: str) -> Claims:
    raw = claims.get(scope_claim) or ""
    scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
    return Claims(
        subject=str(claims.get(client_claim, "")),
        scopes=frozenset(scopes),
        issuer=str(claims.get("iss", "")),
        expires_at=float(claims["exp"]),
    )


def _epoch(value: Any) -> float:
    stamp: float = (
        value.timestamp() if value.tzinfo else value.replace(tzinfo=now().tzinfo).timestamp()
    )
    return stamp
