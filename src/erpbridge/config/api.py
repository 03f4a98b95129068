"""Configuration of the hub's REST API (``hub.api``) and a channel's inbound side (``inbound``)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from erpbridge.config.saml import SamlSettings
from erpbridge.config.strict import Strict

__all__ = [
    "ApiSettings",
    "IdentityGrant",
    "IdentityProvider",
    "InboundConfig",
    "Network",
    "OperationSettings",
    "RateLimits",
    "WebhookConfig",
]


def _network(value: object) -> object:
    # "10.0.0.5" means the one address; strict=False accepts host bits in a range.
    return ip_network(value, strict=False) if isinstance(value, str) else value


#: A CIDR range or one address, IPv4 or IPv6: ``10.0.0.0/8``, ``2001:db8::/32``, ``127.0.0.1``.
Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_network)]


class RateLimits(Strict):
    """Request limits in the ``limits`` notation: ``"20/second; 10000/day"``.

    Each part is a moving window, so ``20/second`` is a burst of 20 and ``10000/day`` a daily
    quota. A client's own ``rate_limit`` (``erpbridge clients add --rate-limit``) replaces
    ``per_client`` for that client.
    """

    per_client: str = Field(default="50/second; 100000/day", description="Per API client.")
    per_route: dict[str, str] = Field(
        default_factory=lambda: {"events": "200/second", "oauth": "10/second"},
        description="Per client and route group (events, hooks, operations, search, oauth, …).",
    )
    anonymous: str = Field(
        default="20/second",
        description="Per address: failed logins (missing or bad credentials); refused first.",
    )
    ui_logins: str = Field(
        default="10/minute; 100/hour",
        description="Per address: failed back-office sign-ins (passwords can be guessed, API "
        "keys cannot); refused first.",
    )
    storage: str = Field(
        default="memory://",
        description="`memory://` in one process; `redis://host:6379` when API processes share.",
    )

    @field_validator("per_client", "anonymous", "ui_logins")
    @classmethod
    def _parses(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)
        return value

    @field_validator("per_route")
    @classmethod
    def _routes_parse(cls, value: dict[str, str]) -> dict[str, str]:
        from limits import parse_many

        for item in value.values():
            parse_many(item)
        return value


Scope = Literal["read", "write", "events", "operations", "admin"]


class IdentityGrant(Strict):
    """What a provider's identities that no ``identities`` entry maps get: a ceiling on the
    token's scopes, and the channels they may touch."""

    scopes: list[Scope] = Field(min_length=1, description="Most these identities may hold.")
    channels: list[str] | None = Field(
        default=None, description="Channels they may touch; null: all."
    )


class IdentityProvider(Strict):
    """An external identity provider whose JWTs the API accepts (OAuth 2.0 / OIDC).

    A token's identity is its issuer plus its ``client_claim`` (``sub`` by default). It acts as a
    local API client only when ``identities`` maps that subject to the client's name; then the
    client's scopes (narrowed by the token's), channels, networks, rate limit, expiry and
    revocation apply. An identity not mapped is refused, unless ``unmapped`` grants it scopes.
    """

    issuer: str = Field(description="The `iss` claim its tokens carry.")
    audience: str | None = Field(default=None, description="The `aud` claim required.")
    jwks_url: str | None = Field(default=None, description="Where its signing keys are.")
    public_key_file: str | None = Field(
        default=None, description="A PEM public key instead of a JWKS URL."
    )
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    scope_claim: str = Field(default="scope", description="Claim with space-separated scopes.")
    client_claim: str = Field(default="sub", description="Claim naming the client.")
    identities: dict[str, str] = Field(
        default_factory=dict,
        description="Subject (the `client_claim`) -> name of the local API client it acts as.",
    )
    unmapped: IdentityGrant | None = Field(
        default=None, description="What identities not in `identities` get; null: refused."
    )


class ApiSettings(Strict):
    """The REST API served by ``erpbridge run`` and ``erpbridge api``."""

    trusted_proxies: list[Network] = Field(
        default_factory=list,
        description="Peers whose X-Forwarded-For is believed; nobody's by default.",
    )
    allowed_ips: list[Network] | None = Field(
        default=None, description="Networks allowed to call the API at all; none: any."
    )
    token_ttl_s: int = Field(default=900, ge=60, le=86400, description="Lifetime of a JWT.")
    key_rotation_days: float = Field(
        default=30, gt=0, description="A signing key older than this is replaced."
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    identity_providers: list[IdentityProvider] = Field(default_factory=list)
    saml: SamlSettings | None = Field(
        default=None, description="SAML 2.0 bearer assertions (RFC 7522) at /oauth/token."
    )
    tls_cert: str | None = Field(default=None, description="Serve HTTPS with this certificate.")
    tls_key: str | None = Field(default=None, description="Its private key.")
    tls_client_ca: str | None = Field(
        default=None, description="Ask for client certificates signed by this CA (mutual TLS)."
    )
    hsts_max_age_s: int = Field(default=31536000, ge=0, description="Strict-Transport-Security.")
    max_body_mb: float = Field(default=10, gt=0, description="Largest request body accepted.")
    max_batch: int = Field(default=1000, ge=1, description="Most records in one event POST.")
    max_pending_events: int = Field(
        default=64,
        ge=1,
        description="Event and webhook requests one API process works on at once; one more "
        "is answered 503 with Retry-After.",
    )
    body_timeout_s: float = Field(
        default=10,
        gt=0,
        description="Seconds an event or webhook request may take to send its body; a slower "
        "one is answered 408 and its connection closed.",
    )
    key_cache_s: float = Field(
        default=60,
        ge=0,
        description="Seconds an API key checked for an event stays known to the API process "
        "(0: look it up on every event); the event's transaction still refuses a revoked or "
        "expired client.",
    )


class WebhookConfig(Strict):
    """A signed webhook from the channel's system, fed into one IN flow."""

    flow: str = Field(description="The IN flow the webhook's records go to.")
    secret: str = Field(
        default="webhook_secret", description="Name of the channel credential holding the key."
    )
    signature_header: str = Field(default="X-Signature", description="Header with the HMAC.")
    signature_prefix: str = Field(default="sha256=", description="Text before the hex digest.")
    algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    timestamp_header: str | None = Field(
        default="X-Timestamp",
        description="Header with the Unix time the sender signed at; signed as 'ts.body'.",
    )
    tolerance_s: int = Field(default=300, ge=1, description="Oldest signature accepted.")
    records_path: str | None = Field(
        default=None, description="Where the record or list sits in the body (dotted)."
    )


class InboundConfig(Strict):
    """What a channel may send to the hub: webhooks, and from which networks."""

    allowed_ips: list[Network] | None = Field(
        default=None, description="Networks the channel's webhooks may come from."
    )
    webhook: WebhookConfig | None = None


class OperationSettings(Strict):
    """What every real-time operation has, whatever its transport."""

    description: str = ""
    timeout_s: float = Field(default=10, gt=0, le=300, description="Answer 504 after this.")
    cache_s: float = Field(
        default=0, ge=0, description="Keep an answer this long for the same parameters; 0: off."
    )


#: The keys of an ``operations:`` entry that are not the transport's.
OPERATION_KEYS = frozenset(OperationSettings.model_fields)
