"""One OData channel's requests: headers, ``$metadata``, pages, ETags, CSRF tokens, errors.

Built on the shared :class:`~erpbridge.transports.http.HttpClient` (auth, TLS, pacing, the
Retry-After patience of GETs, network errors). This layer adds what is OData's own:

- **errors**: ``{"error": {"code", "message"}}`` (V4) and ``{"error": {"code", "message":
  {"value"}}}`` (V2, with SAP's ``innererror.errordetails``) become one line ``code: message``;
  412 Precondition Failed (a stale ETag) is a retriable conflict;
- **CSRF** (SAP Gateway): before the first write a ``GET`` of the service root with
  ``X-CSRF-Token: Fetch``; the token and the session cookies it is bound to are kept; a write
  answered ``403`` with ``x-csrf-token: Required`` fetches a new token and is sent once more;
- **next links**: ``@odata.nextLink`` / ``__next`` are followed on the channel's own origin
  (services behind a proxy often write their internal host name into them, and credentials must
  never go to another host).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field, field_validator

from erpbridge.errors import ErpbridgeError
from erpbridge.transports.base import HealthCategory
from erpbridge.transports.http import (
    HttpChannelOptions,
    HttpClient,
    HttpRefused,
    HttpRetriable,
    _body_summary,
    retry_after_seconds,
)
from erpbridge.transports.odata.edm import Metadata, parse_metadata
from erpbridge.transports.odata.query import query_string

__all__ = ["ODataChannelOptions", "ODataClient", "odata_message"]

_ERRORS = frozenset(range(400, 600))
# Left to HttpClient for GETs: it waits on their Retry-After before giving up.
_PATIENT = frozenset({429, 503})
_GET_ERRORS = _ERRORS - _PATIENT
_MESSAGE_LIMIT = 500


def odata_message(response: httpx.Response) -> str:
    """An error answer in one line: ``code: message (target …; details …)`` from an OData error
    payload (V2 or V4), otherwise the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        # Not OData's error shape (a gateway's HTML page, plain text): the shared summary.
        return _body_summary(response)
    main = _one_error(error)
    details = error.get("details")  # V4
    if not isinstance(details, list):
        inner = error.get("innererror")
        details = inner.get("errordetails") if isinstance(inner, dict) else None  # SAP V2
    extra = [
        text
        for text in dict.fromkeys(_one_error(d) for d in details or [] if isinstance(d, dict))
        if text and text != main
    ]
    text = main + (f" (details: {'; '.join(extra)})" if extra else "")
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _one_error(error: Mapping[str, Any]) -> str:
    message = error.get("message")
    if isinstance(message, dict):  # V2: {"lang": "en", "value": "..."}
        message = message.get("value")
    code = error.get("code")
    text = f"{code}: {message}" if code not in (None, "") else str(message)
    target = error.get("target")
    if isinstance(target, str) and target and not target.startswith("/#TRANSIENT#"):
        text += f" (target {target})"
    return text


class ODataChannelOptions(HttpChannelOptions):
    """An OData channel: the service root as ``base_url``, the protocol version, CSRF."""

    version: Literal["4", "2"] = Field(
        default="4", description="OData protocol version of the service: `4` or `2`."
    )
    csrf: bool | None = Field(
        default=None,
        description="Fetch an X-CSRF-Token before the first write (SAP Gateway). Default: "
        "yes for V2; V4 fetches one when a write is answered 403 `x-csrf-token: Required`.",
    )
    entity_sets: list[str] = Field(
        default_factory=list,
        description="Entity sets the service must offer; the connection check looks for them.",
    )
    params: dict[str, str] = Field(
        default_factory=dict,
        description="Added to the query of every request, e.g. `sap-client: '100'`.",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


class ODataClient:
    """Requests to one OData service, with errors translated into erpbridge's tree."""

    def __init__(self, channel: str, options: ODataChannelOptions, base_dir: Path) -> None:
        self.channel = channel
        self.options = options
        self.version = options.version
        self.http = HttpClient(channel, options, base_dir)
        self.json_type = (
            "application/json" if self.version == "2" else "application/json;IEEE754Compatible=true"
        )
        self._metadata: Metadata | None = None
        self._token: str | None = None
        self._token_lock = threading.Lock()

    # -- addresses -------------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """``path`` below the service root with ``params`` and the channel's own ``params``."""
        query = query_string({**(params or {}), **self.options.params})
        return f"{path}?{query}" if query else path

    def follow(self, link: str) -> str:
        """A next link as a URL on the channel's own origin."""
        base = httpx.URL(self.http.base_url)
        url = httpx.URL(link)
        if not url.is_absolute_url and not link.startswith("/"):
            return link  # relative to the service root, as CAP and most V4 services write it
        raw = url.raw_path.decode("ascii")
        root = base.raw_path.decode("ascii").partition("?")[0]
        if raw.startswith(root):
            return raw[len(root) :]
        return f"{base.scheme}://{base.netloc.decode('ascii')}{raw}"

    def where(self, method: str, what: str) -> str:
        """``channel 'x': METHOD what`` for messages."""
        return f"channel {self.channel!r}: {method} {what}"

    # -- reading ---------------------------------------------------------------------------------

    def metadata(self) -> Metadata:
        """The service's ``$metadata``, fetched once per transport."""
        if self._metadata is not None:
            return self._metadata
        what = f"{self.http.base_url}$metadata"
        response = self.http.request(
            "GET", self.url("$metadata"), headers={"Accept": "application/xml"}, ok=_GET_ERRORS
        )
        if not response.is_success:
            raise self.failure("GET", what, response)
        try:
            metadata = parse_metadata(response.content)
        except ValueError as exc:
            raise HttpRefused(f"{self.where('GET', what)}: {exc}", None, "protocol") from exc
        if metadata.version != self.version:
            raise HttpRefused(
                f"{self.where('GET', what)}: the service speaks OData V{metadata.version}, "
                f"but the channel says version: {self.version!r}",
                None,
                "protocol",
            )
        self._metadata = metadata
        return metadata

    def page(self, url: str, what: str) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection: its entities and the next link (``None`` at the end)."""
        body = self._get_json(url, what)
        if self.version == "4":
            rows, link = body.get("value"), body.get("@odata.nextLink")
        else:
            data = body.get("d")
            rows, link = (data, None) if isinstance(data, list) else (None, None)
            if isinstance(data, dict):
                rows, link = data.get("results"), data.get("__next")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            shape = "'value'" if self.version == "4" else "'d.results'"
            raise HttpRefused(
                f"{self.where('GET', what)}: the answer has no {shape} list of entities "
                f"(is the service OData V{self.version}?)",
                None,
                "protocol",
            )
        return rows, link if isinstance(link, str) and link else None

    def delta_page(
        self, url: str, what: str, *, stored: bool, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """One page of a change-tracked read (V4): its entries, the next link and the delta
        link (on the last page). The first read asks ``Prefer: odata.track-changes``; a stored
        delta link (``stored``) the service no longer takes (410 Gone, or another 4xx but
        401/403/408/429) is an error that tells the operator to reset the flow's cursor."""
        prefer = f"odata.track-changes,odata.maxpagesize={page_size}"
        headers = {"Accept": self.json_type, "Prefer": prefer}
        response = self.http.request("GET", url, headers=headers, ok=_GET_ERRORS)
        status = response.status_code
        if stored and 400 <= status < 500 and status not in (401, 403, 408, 429):
            raise HttpRefused(
                f"{self.where('GET', what)}: the delta link stored in the flow's cursor was "
                f"refused (HTTP {status} {response.reason_phrase}: {odata_message(response)}); "
                "it expired or is no longer valid: reset the flow's cursor "
                "(`erpbridge cursor reset <flow>`) so that the next run reads the entity set "
                "anew and gets a fresh delta link",
                status,
                "error",
            )
        if not response.is_success:
            raise self.failure("GET", what, response)
        body = self._json(response, "GET", what)
        rows, link, delta = (
            body.get("value"),
            body.get("@odata.nextLink"),
            body.get("@odata.deltaLink"),
        )
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise HttpRefused(
                f"{self.where('GET', what)}: the answer has no 'value' list of entries",
                None,
                "protocol",
            )
        next_link = link if isinstance(link, str) and link else None
        return rows, next_link, delta if isinstance(delta, str) and delta else None

    def entity(self, path: str) -> tuple[dict[str, Any] | None, str | None]:
        """One entity and its ETag, or ``(None, None)`` when it does not exist (404)."""
        response = self.http.request(
            "GET", self.url(path), headers={"Accept": self.json_type}, ok=_GET_ERRORS
        )
        if response.status_code == 404:
            return None, None
        if not response.is_success:
            raise self.failure("GET", path, response)
        entity = self._entity_of(self._json(response, "GET", path), "GET", path)
        return entity, self.etag_of(entity, response)

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        response = self.http.request("GET", url, headers={"Accept": self.json_type}, ok=_GET_ERRORS)
        if not response.is_success:
            raise self.failure("GET", what, response)
        return self._json(response, "GET", what)

    def _json(self, response: httpx.Response, method: str, what: str) -> dict[str, Any]:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            kind = response.headers.get("Content-Type", "no content type")
            raise HttpRefused(
                f"{self.where(method, what)}: the answer is not JSON ({kind})", None, "protocol"
            ) from exc
        if not isinstance(body, dict):
            raise HttpRefused(
                f"{self.where(method, what)}: the answer is not a JSON object", None, "protocol"
            )
        return body

    def _entity_of(self, body: dict[str, Any], method: str, what: str) -> dict[str, Any]:
        if self.version == "4":
            return body
        entity = body.get("d")
        if not isinstance(entity, dict):
            raise HttpRefused(
                f"{self.where(method, what)}: the answer has no 'd' object", None, "protocol"
            )
        return entity

    def etag_of(self, entity: Mapping[str, Any], response: httpx.Response | None) -> str | None:
        """The ETag of an entity: ``@odata.etag`` (V4), ``__metadata.etag`` (V2) or the header."""
        etag = entity.get("@odata.etag")
        meta = entity.get("__metadata")
        if etag is None and isinstance(meta, dict):
            etag = meta.get("etag")
        if etag is None and response is not None:
            etag = response.headers.get("ETag")
        return str(etag) if etag else None

    # -- writing ---------------------------------------------------------------------------------

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """POST a new entity (with nested items: a deep insert); the created entity if sent."""
        headers = {"Prefer": "return=representation"} if self.version == "4" else {}
        response = self._write("POST", path, body, headers)
        if response.status_code == 204 or not response.content:
            return None
        return self._entity_of(self._json(response, "POST", path), "POST", path)

    def update(self, path: str, changes: Mapping[str, Any], etag: str | None) -> None:
        """PATCH the changed properties, with ``If-Match`` when the entity has an ETag."""
        self._write("PATCH", path, changes, {"If-Match": etag} if etag else {})

    def delete(self, path: str, etag: str | None) -> None:
        """DELETE the entity at ``path``, with ``If-Match`` (its ETag, else any version)."""
        self._write("DELETE", path, None, {"If-Match": etag or "*"})

    def _write(
        self, method: str, path: str, body: Mapping[str, Any] | None, extra: Mapping[str, str]
    ) -> httpx.Response:
        headers = {"Content-Type": self.json_type, "Accept": self.json_type, **extra}
        content = None if body is None else orjson.dumps(body)
        if self._csrf_first() and self._token is None:
            self._fetch_token()
        refetched = False
        while True:
            if self._token is not None:
                headers["X-CSRF-Token"] = self._token
            response = self.http.request(
                method, self.url(path), content=content, headers=headers, ok=_ERRORS
            )
            required = response.headers.get("x-csrf-token", "").lower() == "required"
            if response.status_code == 403 and required and not refetched and self._csrf_ok():
                # The session or its token expired (or the service wants one): once more.
                refetched = True
                self._fetch_token()
                continue
            if not response.is_success:
                raise self.failure(method, path, response)
            return response

    def _csrf_first(self) -> bool:
        csrf = self.options.csrf
        return self.version == "2" if csrf is None else csrf

    def _csrf_ok(self) -> bool:
        return self.options.csrf is not False

    def _fetch_token(self) -> None:
        with self._token_lock:
            response = self.http.request(
                "GET",
                self.url(""),
                headers={"X-CSRF-Token": "Fetch", "Accept": self.json_type},
                ok=_GET_ERRORS,
            )
            what = f"{self.http.base_url} (X-CSRF-Token: Fetch)"
            if not response.is_success:
                raise self.failure("GET", what, response)
            token = response.headers.get("x-csrf-token")
            if not token or token.lower() == "required":
                raise HttpRefused(
                    f"{self.where('GET', what)}: the service sent no CSRF token",
                    response.status_code,
                    "protocol",
                )
            self._token = token

    # -- errors ----------------------------------------------------------------------------------

    def failure(self, method: str, what: str, response: httpx.Response) -> ErpbridgeError:
        """The error for an unsuccessful answer, by status, with the OData error text."""
        status = response.status_code
        text = (
            f"{self.where(method, what)} answered HTTP {status} {response.reason_phrase}: "
            f"{odata_message(response)}"
        )
        if status == 412:
            return HttpRetriable(
                f"{text} — the entity changed since its ETag was read (a conflicting change); "
                "the delivery is retried with a fresh read",
                status,
                None,
                "error",
            )
        if status in (404, 405, 410, 501):
            return HttpRefused(text, status, "schema")
        if status in (408, 425, 429) or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            category: HealthCategory = "timeout" if status in (408, 504) else "error"
            return HttpRetriable(text, status, retry_after, category)
        if status == 401:
            return HttpRefused(text, status, "auth")
        if status == 403:
            return HttpRefused(text, status, "forbidden")
        return HttpRefused(text, status, "error")

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
