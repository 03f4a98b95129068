"""The SOAP transport's border: zeep and requests errors become erpbridge errors with a category.

What the worker must do follows from the class alone:

- a SOAP fault whose code is ``Client.*`` (SOAP 1.2 ``Sender``) is the request's fault:
  :class:`SoapFailed` (a ``FatalError``), naming the fault code and string;
- ``Server.*`` (``Receiver``), HTTP 408/429/5xx without a fault: :class:`SoapRetriable`;
- refused, DNS, TLS, timeouts: :class:`SoapUnavailable` (a ``SourceUnavailable``);
- HTTP 401/403, an answer that is not XML or not the expected envelope, a WSDL that cannot be
  read: :class:`SoapFailed`.

Each carries a :data:`~erpbridge.transports.base.HealthCategory` for ``erpbridge channels test``.
"""

from __future__ import annotations

import html
import re
import socket
import ssl
from typing import Any

import requests
import urllib3.exceptions
from zeep import exceptions as zeep_errors

from erpbridge.errors import ErpbridgeError, FatalError, RetriableError, SourceUnavailable
from erpbridge.transports.base import HealthCategory

__all__ = [
    "SoapFailed",
    "SoapRetriable",
    "SoapUnavailable",
    "category_of",
    "scrub_url",
    "translate",
]

#: Fault codes (local part) that mean the credentials were refused (WS-Security, common ERPs).
_AUTH_FAULTS = frozenset(
    {"FailedAuthentication", "InvalidSecurityToken", "InvalidSecurity", "Unauthorized"}
)
_RETRIABLE_STATUS = frozenset({408, 425, 429})
_PROTOCOL_ERRORS = (
    zeep_errors.XMLSyntaxError,
    zeep_errors.XMLParseError,
    zeep_errors.UnexpectedElementError,
    zeep_errors.WsdlSyntaxError,
    zeep_errors.LookupError,
    zeep_errors.NamespaceError,
)


class SoapUnavailable(SourceUnavailable):
    """The service could not be reached: refused, DNS, TLS, timeout. Passing by nature."""

    def __init__(self, message: str, category: HealthCategory) -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class SoapRetriable(RetriableError):
    """The service answered with a passing failure: a ``Server`` fault, HTTP 429, 5xx."""

    def __init__(self, message: str, category: HealthCategory = "error") -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class SoapFailed(FatalError):
    """Refused for good: a ``Client`` fault, 401/403/404, a malformed answer or WSDL."""

    def __init__(self, message: str, category: HealthCategory = "error") -> None:
        super().__init__(message)
        self.category: HealthCategory = category


def category_of(exc: BaseException) -> HealthCategory:
    """The health category an error of this module carries (``error`` for any other)."""
    category: HealthCategory = getattr(exc, "category", "error")
    return category


def translate(where: str, exc: BaseException) -> ErpbridgeError | None:
    """The erpbridge error for a zeep or requests error raised at ``where``; ``None`` for any
    other exception (a bug, which the caller lets through)."""
    if isinstance(exc, zeep_errors.Fault):
        return _fault(where, exc)
    if isinstance(exc, zeep_errors.TransportError):
        return _status(where, exc.status_code, exc.content)
    if isinstance(exc, zeep_errors.ValidationError):
        return SoapFailed(
            f"{where}: the request does not fit the operation's input: {exc}", "error"
        )
    if isinstance(exc, zeep_errors.DTDForbidden | zeep_errors.EntitiesForbidden):
        return SoapFailed(f"{where}: the XML declares a DOCTYPE or entities (refused)", "protocol")
    if isinstance(exc, _PROTOCOL_ERRORS):
        return SoapFailed(f"{where}: malformed answer: {_short(str(exc))}", "protocol")
    if isinstance(exc, zeep_errors.Error):
        return SoapFailed(f"{where}: {type(exc).__name__}: {_short(str(exc))}", "protocol")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _status(where, exc.response.status_code, exc.response.content)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
        return SoapFailed(f"{where}: not a usable URL: {exc}", "error")
    if isinstance(exc, requests.RequestException):
        category, cause = _network_cause(exc)
        return SoapUnavailable(f"{where}: {cause}", category)
    if isinstance(exc, FileNotFoundError):
        return SoapFailed(f"{where}: file not found", "error")
    if isinstance(exc, OSError):
        return SoapFailed(f"{where}: cannot read: {exc.strerror or exc}", "error")
    return None


def _fault(where: str, fault: zeep_errors.Fault) -> ErpbridgeError:
    if not fault.code:
        # zeep reports a non-200 XML answer without a Fault element this way.
        return SoapRetriable(
            f"{where}: the service answered an HTTP error without a SOAP fault: "
            f"{_summary(fault.detail)}"
        )
    code = fault.code.rpartition(":")[2]
    text = f"{where}: SOAP fault {code}: {_short(fault.message or '')}"
    subcodes = [str(s).rpartition("}")[2] for s in (fault.subcodes or [])]
    if code in _AUTH_FAULTS or _AUTH_FAULTS.intersection(subcodes):
        return SoapFailed(text, "auth")
    kind = code.split(".")[0]
    if kind in ("Client", "Sender"):
        return SoapFailed(text, "error")
    if kind in ("Server", "Receiver"):
        return SoapRetriable(text)
    return SoapFailed(text, "protocol")  # VersionMismatch, MustUnderstand, unknown codes


def _status(where: str, status: int, content: Any) -> ErpbridgeError:
    body = _summary(content)
    if status == 200:
        return SoapFailed(f"{where}: the answer is not SOAP XML: {body}", "protocol")
    text = f"{where}: HTTP {status}: {body}"
    if status == 401:
        return SoapFailed(
            f"{text} (check `auth`, `username` and the `password` credential)", "auth"
        )
    if status == 403:
        return SoapFailed(text, "forbidden")
    if status in (404, 405, 410):
        return SoapFailed(text, "schema")
    if status in _RETRIABLE_STATUS or status >= 500:
        return SoapRetriable(text, "timeout" if status in (408, 504) else "error")
    return SoapFailed(text, "protocol" if status < 400 else "error")


def _network_cause(exc: requests.RequestException) -> tuple[HealthCategory, str]:
    if isinstance(exc, requests.Timeout):
        return "timeout", f"no answer in time ({type(exc).__name__})"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return "dns", "host name not found"
        if isinstance(cause, ssl.SSLError):
            return "tls", f"TLS failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "refused", "connection refused (nothing listens there)"
        if isinstance(cause, TimeoutError | socket.timeout):
            return "timeout", "no answer in time"
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError) or "certificate" in text:
        return "tls", f"TLS failed: {_short(str(exc))}"
    if "refused" in text:
        return "refused", "connection refused (nothing listens there)"
    return "error", f"{type(exc).__name__}: {_short(str(exc))}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the socket error several levels."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += list(current.args)
    return seen


def _summary(content: Any, limit: int = 200) -> str:
    """A body as one readable line: HTML without its tags, cut at ``limit`` characters."""
    if not content:
        return "(empty body)"
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text[: limit * 20])
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return _short(" ".join(text.split()) or "(no text)", limit)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub_url(url: str) -> str:
    """``url`` fit for a message: no user or password, query values hidden (``?wsdl`` kept)."""
    url = re.sub(r"(?<=://)[^/@\s]*@", "", url)
    head, _, query = url.partition("?")
    if not query:
        return head
    names = [part if "=" not in part else part.split("=", 1)[0] + "=…" for part in query.split("&")]
    return head + "?" + "&".join(names)
