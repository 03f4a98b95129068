"""The RPC transport's sessions: what a logged-in connection to an ERP offers, whatever dialect.

A session logs in lazily, keeps what the login gave, and offers the few verbs the transport
needs — ``search_read``, ``read``, ``create``, ``write`` — plus the pieces of its dialect's domain
language. Server faults are translated into erpbridge errors that name the channel, the model,
the method and the cause, with a health category (``auth``, ``forbidden``, ``schema``, …). The
dialects are :mod:`erpbridge.transports.rpc.tryton` and :mod:`erpbridge.transports.rpc.odoo`.
"""

from __future__ import annotations

import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from erpbridge.transports.http import HttpClient
from erpbridge.transports.rpc.wire import RpcError

__all__ = ["Account", "Domain", "Order", "RpcSession", "names_of"]

Domain = list[Any]
Order = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Account:
    """Who logs in where: the database, the user, the password (or Odoo API key)."""

    database: str
    username: str
    password: SecretStr = field(repr=False)
    protocol: str = "jsonrpc"
    language: str = "en"
    context: Mapping[str, Any] = field(default_factory=dict)


class RpcSession(ABC):
    """One channel's logged-in connection to an ERP; thread-safe."""

    #: The dialect's name, for messages.
    name: ClassVar[str]
    #: Whether replacing one2many lines needs the ids of the lines there now.
    replace_needs_ids: ClassVar[bool]

    def __init__(self, channel: str, account: Account, http: HttpClient) -> None:
        self.channel = channel
        self.account = account
        self.http = http
        self.xml = account.protocol == "xmlrpc"
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    # -- what each dialect implements ------------------------------------------------------------

    @abstractmethod
    def login(self) -> None:
        """Log in (again), replacing whatever the last login gave."""

    @abstractmethod
    def version(self) -> str:
        """The server's version, e.g. ``8.2``."""

    @abstractmethod
    def execute(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: Mapping[str, Any] | None = None,
        fields: Sequence[str] = (),
    ) -> Any:
        """Call ``method`` of ``model``; ``fields`` only help to name an unknown field."""

    @abstractmethod
    def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str] | None,
        limit: int | None,
        order: Order,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Records matching ``domain`` in ``order``, at most ``limit`` (``None``: all);
        ``context`` is merged into the call's context (Tryton ``locations``, ``active_test``)."""

    @abstractmethod
    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The records ``ids`` with ``fields``."""

    @abstractmethod
    def create(
        self,
        model: str,
        rows: list[dict[str, Any]],
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Create ``rows`` in one call (one transaction); return their ids in order."""

    @abstractmethod
    def write(
        self,
        model: str,
        changes: list[tuple[int, dict[str, Any]]],
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Write each record's values."""

    @abstractmethod
    def conjoin(self, *domains: Domain) -> Domain:
        """All of ``domains`` (empty ones left out)."""

    @abstractmethod
    def disjoin(self, *domains: Domain) -> Domain:
        """Any of ``domains`` (each one a whole domain, its terms ANDed)."""

    @abstractmethod
    def since(self, field_name: str, value: Any, fallback: str | None) -> Domain:
        """Records whose ``field_name`` (or ``fallback`` where it is empty) is ≥ ``value``."""

    @abstractmethod
    def filled(self, field_name: str, empty: bool = False) -> Domain:
        """Records whose ``field_name`` is set (``empty``: is not set)."""

    @abstractmethod
    def one2many(self, rows: list[Any], existing: Sequence[int] | None) -> list[Any]:
        """Commands that create ``rows`` as lines; with ``existing``, replacing those lines."""

    @abstractmethod
    def many2many(self, add: Sequence[int], remove: Sequence[int]) -> list[Any]:
        """Commands that link the records ``add`` and unlink ``remove`` (neither deleted)."""

    @abstractmethod
    def close(self) -> None:
        """End the session on the server where there is one."""

    # -- shared ----------------------------------------------------------------------------------

    def where(self, model: str | None = None, method: str | None = None) -> str:
        """The place for a message: channel, dialect, model and method."""
        place = f"channel {self.channel!r}: {self.name}"
        if model is not None:
            place += f" {model}"
        if method is not None:
            place += f".{method}" if model is not None else f" {method}"
        return place

    def _encode(self, method: str, params: list[Any], encode: Callable[[Any], Any]) -> Any:
        try:
            return encode(params)
        except ValueError as exc:
            raise RpcError(f"{self.where(method=method)}: {exc}") from exc

    def _protocol_error(self, method: str, response: httpx.Response, exc: Exception) -> RpcError:
        kind = "XML-RPC" if self.xml else "JSON-RPC"
        return RpcError(
            f"{self.where(method=method)}: the answer from {response.request.url} is not a "
            f"{kind} response ({exc})",
            "protocol",
        )

    def _scrub(self, text: str) -> str:
        secret = self.account.password.get_secret_value()
        return text.replace(secret, "***") if secret else text


def names_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The field names of ``rows``, in order of appearance (to name an unknown field)."""
    return list(dict.fromkeys(name for row in rows for name in row))
