"""The HTTP client the REST, OData and RPC transports share: auth, TLS, pacing, error mapping.

One :class:`HttpClient` per channel wraps an :class:`httpx.Client`. It owns what every HTTP
transport needs and none should write twice:

- **auth** (``auth:`` in the channel options): API key in a header or the query, basic, bearer,
  OAuth 2.0 client credentials (token cached until shortly before it expires, fetched again on a
  401), and mutual TLS through ``client_cert``/``client_key``;
- **TLS**: verification on by default, an own CA bundle through ``verify``;
- **pacing**: ``requests_per_s`` spaces this process's requests to the channel;
- **patience**: a GET answered 429/503 with ``Retry-After`` is tried again after that delay (up to
  ``max_wait_s`` in all); any other failure is translated at the border into erpbridge's error
  tree, with a :data:`~erpbridge.transports.base.HealthCategory` that ``erpbridge channels test``
  prints (``dns``, ``refused``, ``tls``, ``timeout``, ``auth``, ``forbidden``, …).

Secrets come only from the channel's ``credentials:`` block and never appear in a message.
"""

from __future__ import annotations

import base64
import email.utils
import html
import re
import socket
import ssl
import threading
import time
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erpbridge.errors import FatalError, RetriableError, SourceUnavailable
from erpbridge.transports.base import Health, HealthCategory

__all__ = [
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "HttpChannelOptions",
    "HttpClient",
    "HttpRefused",
    "HttpRetriable",
    "HttpUnreachable",
    "NoAuth",
    "OAuth2Auth",
    "health_of",
    "retry_after_seconds",
]

_RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_MIN_WAIT_S = 1.0


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: Credential names this mode needs from the channel's ``credentials:`` block.
    needs: tuple[str, ...] = ()


class NoAuth(_Auth):
    """No authentication (a channel on a trusted network, or mutual TLS alone)."""

    type: Literal["none"] = "none"


class ApiKeyAuth(_Auth):
    """An API key (credential ``api_key``) sent in a header or a query parameter."""

    type: Literal["api_key"]
    name: str = Field(default="X-API-Key", description="Header or query parameter name.")
    location: Literal["header", "query"] = Field(
        default="header", alias="in", description="Where the key goes: `header` or `query`."
    )
    prefix: str = Field(default="", description="Written before the key, e.g. 'ApiKey '.")
    needs: tuple[str, ...] = ("api_key",)


class BasicAuth(_Auth):
    """HTTP basic authentication; the password is the credential ``password``."""

    type: Literal["basic"]
    username: str
    needs: tuple[str, ...] = ("password",)


class BearerAuth(_Auth):
    """A fixed bearer token or JWT (credential ``token``)."""

    type: Literal["bearer"]
    needs: tuple[str, ...] = ("token",)


class OAuth2Auth(_Auth):
    """OAuth 2.0 client credentials: ``client_id`` here, credential ``client_secret``."""

    type: Literal["oauth2"]
    token_url: str = Field(description="The token endpoint (absolute, or relative to base_url).")
    client_id: str
    scope: str | None = Field(default=None, description="Space-separated scopes to ask for.")
    audience: str | None = Field(default=None, description="Sent as `audience` when set.")
    client_auth: Literal["basic", "body"] = Field(
        default="basic", description="Send the client secret as basic auth or in the form body."
    )
    encoding: Literal["form", "json"] = Field(
        default="form",
        description="How the token request's parameters travel: a form (RFC 6749) or a JSON "
        "object (as OroCommerce's documentation shows it).",
    )
    needs: tuple[str, ...] = ("client_secret",)


AuthOptions = Annotated[
    NoAuth | ApiKeyAuth | BasicAuth | BearerAuth | OAuth2Auth, Field(discriminator="type")
]


class HttpChannelOptions(BaseModel):
    """Connection options every HTTP-based channel has (REST, OData, JSON-RPC, XML-RPC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="The service root, e.g. https://erp.example.com/api/.")
    auth: AuthOptions = Field(default_factory=NoAuth, description="How to authenticate.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers sent with every request."
    )
    timeout_s: float = Field(default=30, gt=0, description="Read/write timeout per request.")
    connect_timeout_s: float = Field(default=10, gt=0, description="Connect timeout.")
    verify: bool | str = Field(
        default=True, description="Verify TLS certificates; a path names an own CA bundle."
    )
    client_cert: str | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    client_key: str | None = Field(
        default=None,
        description="Its private key (PEM); a passphrase is credential `client_key_password`.",
    )
    requests_per_s: float | None = Field(
        default=None, gt=0, description="Space this process's requests to the channel."
    )
    max_wait_s: float = Field(
        default=60, ge=0, description="Longest total wait on Retry-After while reading."
    )
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict, description="Filled from the channel's `credentials:` block."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _credentials_present(self) -> Self:
        missing = [name for name in self.auth.needs if name not in self.credentials]
        if missing:
            names = ", ".join(missing)
            raise ValueError(
                f"auth type {self.auth.type!r} needs credentials: {names} "
                "(add them under the channel's credentials: as ${ENV_VAR})"
            )
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert")
        return self

    def secret(self, name: str) -> str:
        """The credential ``name`` in clear text (for the request only, never for a message)."""
        return self.credentials[name].get_secret_value()


class HttpUnreachable(SourceUnavailable):
    """The channel could not be reached: DNS, refused, TLS, timeout. Passing by nature."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class HttpRetriable(RetriableError):
    """The channel answered with a passing failure: 429, 503, another 5xx."""

    def __init__(
        self, message: str, status: int, retry_after: float | None, category: HealthCategory
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.category: HealthCategory = category


class HttpRefused(FatalError):
    """The channel refused the request for good: 401, 403, 404, 4xx, or a malformed answer."""

    def __init__(self, message: str, status: int | None, category: HealthCategory) -> None:
        super().__init__(message)
        self.status = status
        self.category: HealthCategory = category


def health_of(exc: BaseException) -> Health:
    """A failed connection check, as ``erpbridge channels test`` shows it."""
    category: HealthCategory = getattr(exc, "category", "error")
    return Health(ok=False, detail=str(exc), category=category)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; ``None`` if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _ApiKey(httpx.Auth):
    def __init__(self, options: ApiKeyAuth, key: str) -> None:
        self.options, self.value = options, options.prefix + key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.options.location == "header":
            request.headers[self.options.name] = self.value
        else:
            request.url = request.url.copy_merge_params({self.options.name: self.value})
        yield request


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class _OAuth2ClientCredentials(httpx.Auth):
    """Fetches a token with the client credentials grant, caches it, renews it on expiry or 401."""

    requires_response_body = True

    def __init__(self, channel: str, options: OAuth2Auth, token_url: str, secret: str) -> None:
        self.channel, self.options, self.token_url, self.secret = (
            channel,
            options,
            token_url,
            secret,
        )
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._store((yield self._token_request()))
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                if self._token == token:  # nobody renewed it meanwhile
                    self._store((yield self._token_request()))
                request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self.options.scope:
            form["scope"] = self.options.scope
        if self.options.audience:
            form["audience"] = self.options.audience
        headers = {"Accept": "application/json"}
        if self.options.client_auth == "basic":
            pair = f"{self.options.client_id}:{self.secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form |= {"client_id": self.options.client_id, "client_secret": self.secret}
        if self.options.encoding == "json":
            return httpx.Request("POST", self.token_url, json=form, headers=headers)
        return httpx.Request("POST", self.token_url, data=form, headers=headers)

    def _store(self, response: httpx.Response) -> None:
        where = f"channel {self.channel!r}: token endpoint {self.token_url}"
        if response.status_code in (400, 401, 403):
            raise HttpRefused(
                f"{where} refused the client credentials (HTTP {response.status_code}: "
                f"{_body_summary(response)})",
                response.status_code,
                "auth",
            )
        if response.status_code >= 300:
            raise _status_error(where, response)
        try:
            body = response.json()
            token, expires_in = body["access_token"], float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError) as exc:
            raise HttpRefused(
                f"{where} answered without an access_token ({type(exc).__name__})", None, "protocol"
            ) from exc
        self._token = str(token)
        # Renew a little early, so a token never expires between our check and the server's.
        self._expires = time.monotonic() + max(expires_in - 30, expires_in / 2)


class HttpClient:
    """One channel's HTTP connection pool, authenticated, paced, with errors translated."""

    def __init__(self, channel: str, options: HttpChannelOptions, base_dir: Path) -> None:
        self.channel = channel
        self.options = options
        self.base_url = options.base_url
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0
        self.client = httpx.Client(
            base_url=options.base_url,
            auth=self._auth(options),
            headers={"User-Agent": "erpbridge", **options.headers},
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s),
            verify=_ssl_context(options, base_dir),
            follow_redirects=False,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        ok: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request; return a 2xx response (or one whose status is in ``ok``).

        Every other outcome raises: :class:`HttpUnreachable`, :class:`HttpRetriable` or
        :class:`HttpRefused`, each naming the channel, method, URL and cause.
        """
        waited = 0.0
        while True:
            self._pace()
            try:
                response = self.client.request(
                    method, url, params=params, json=json, content=content, headers=headers
                )
            except httpx.HTTPError as exc:
                raise self._unreachable(method, url, exc) from exc
            if response.is_success or response.status_code in ok:
                return response
            error = _status_error(self._where(method, str(response.request.url)), response)
            wait = error.retry_after if isinstance(error, HttpRetriable) else None
            if wait is not None:
                # A floor, so that 'Retry-After: 0' cannot turn patience into a request storm.
                wait = max(wait, _MIN_WAIT_S)
            if (
                method.upper() in _IDEMPOTENT
                and wait is not None
                and waited + wait <= self.options.max_wait_s
            ):
                waited += wait
                time.sleep(wait)
                continue
            raise error

    def absolute(self, url: str) -> str:
        """``url`` resolved against the channel's base URL."""
        return str(self.client.base_url.join(url))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def _where(self, method: str, url: str) -> str:
        return f"channel {self.channel!r}: {method.upper()} {_scrub_url(url)}"

    def _pace(self) -> None:
        rate = self.options.requests_per_s
        if rate is None:
            return
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1 / rate
        if slot > now:
            time.sleep(slot - now)

    def _unreachable(self, method: str, url: str, exc: httpx.HTTPError) -> HttpUnreachable:
        where = self._where(method, self.absolute(url))
        category, cause = _network_cause(exc)
        return HttpUnreachable(f"{where}: {cause}", category)

    def _auth(self, options: HttpChannelOptions) -> httpx.Auth | None:
        auth = options.auth
        if isinstance(auth, ApiKeyAuth):
            return _ApiKey(auth, options.secret("api_key"))
        if isinstance(auth, BasicAuth):
            return httpx.BasicAuth(auth.username, options.secret("password"))
        if isinstance(auth, BearerAuth):
            return _Bearer(options.secret("token"))
        if isinstance(auth, OAuth2Auth):
            token_url = str(httpx.URL(options.base_url).join(auth.token_url))
            return _OAuth2ClientCredentials(
                self.channel, auth, token_url, options.secret("client_secret")
            )
        return None


def _ssl_context(options: HttpChannelOptions, base_dir: Path) -> ssl.SSLContext | bool:
    if options.verify is False and not options.client_cert:
        return False
    cafile = None
    if isinstance(options.verify, str):
        cafile = str(base_dir / options.verify)
    try:
        context = ssl.create_default_context(cafile=cafile)
        if options.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if options.client_cert:
            password = options.credentials.get("client_key_password")
            context.load_cert_chain(
                str(base_dir / options.client_cert),
                str(base_dir / options.client_key) if options.client_key else None,
                password.get_secret_value() if password else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise HttpRefused(f"TLS files cannot be loaded: {exc}", None, "tls") from exc
    return context


def _network_cause(exc: httpx.HTTPError) -> tuple[HealthCategory, str]:
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").lower().strip()
        return "timeout", f"no answer in time ({kind})"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return "dns", f"host name not found ({cause.strerror or cause})"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls", f"TLS failed: certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return "tls", f"TLS failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "refused", "connection refused (nothing listens there)"
    text = str(exc)
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "dns", f"host name not found ({text})"
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return "tls", f"TLS failed: {text}"
    if "refused" in lowered:
        return "refused", "connection refused (nothing listens there)"
    return "error", f"{type(exc).__name__}: {text}"


def _status_error(where: str, response: httpx.Response) -> HttpRetriable | HttpRefused:
    status = response.status_code
    text = f"{where} answered HTTP {status} {response.reason_phrase}: {_body_summary(response)}"
    if status in _RETRIABLE_STATUS or status >= 500:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        category: HealthCategory = "timeout" if status in (408, 504) else "error"
        return HttpRetriable(text, status, retry_after, category)
    if status == 401:
        return HttpRefused(text, status, "auth")
    if status == 403:
        return HttpRefused(text, status, "forbidden")
    if status in (404, 405, 410):
        return HttpRefused(text, status, "schema")
    return HttpRefused(text, status, "protocol" if status < 400 else "error")


def _body_summary(response: httpx.Response, limit: int = 300) -> str:
    """The body as one readable line: JSON error messages as they are, HTML without tags."""
    try:
        raw = response.read()
    except httpx.HTTPError:
        return "(body unreadable)"
    if not raw:
        return "(empty body)"
    text = raw[: limit * 8].decode(response.encoding or "utf-8", errors="replace")
    if "html" in response.headers.get("Content-Type", "") or text.lstrip().startswith("<"):
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scrub_url(url: str) -> str:
    # A key may travel in the query (api_key in: query): never echo query values.
    head, _, query = url.partition("?")
    if not query:
        return head
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    return head + "?" + "&".join(f"{name}=…" for name in names)
