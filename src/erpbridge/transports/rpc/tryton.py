"""Tryton over JSON-RPC or XML-RPC (checked with trytond 8.2).

``POST /<db>/rpc/``; ``common.db.login`` gives ``[uid, session, …]``, sent back as
``Authorization: Session base64(user:uid:session)``; the user's context (from
``res.user.get_preferences``) is the last parameter of every model call. A session the server
no longer knows is answered HTTP 401 and renewed once by logging in again. Errors come back as
HTTP 200 with ``{"error": [name, args]}`` (JSON) or a fault whose code names the exception
(XML: 1 UserError, 2 UserWarning, 3 LoginException, 4 ConcurrencyException).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from erpbridge.errors import ErpbridgeError
from erpbridge.transports.http import HttpClient, HttpRefused
from erpbridge.transports.rpc.session import Account, Domain, Order, RpcSession, names_of
from erpbridge.transports.rpc.wire import (
    RpcError,
    RpcFault,
    RpcRetriable,
    tryton_decode,
    tryton_encode,
    tryton_hook,
    xml_dumps,
    xml_loads,
)

__all__ = ["TrytonSession"]

log = logging.getLogger(__name__)


class TrytonSession(RpcSession):
    """Tryton 6+ (checked with 8.2): ``POST /<db>/rpc/``, session header, context parameter."""

    name = "Tryton"
    replace_needs_ids = True

    _FAULT_CODES: ClassVar[dict[int, str]] = {
        1: "UserError",
        2: "UserWarning",
        3: "LoginException",
        4: "ConcurrencyException",
    }

    def __init__(self, channel: str, account: Account, http: HttpClient) -> None:
        super().__init__(channel, account, http)
        self._url = f"{quote(account.database, safe='')}/rpc/"
        self._auth: str | None = None
        self._context: dict[str, Any] = {}
        digest = hashlib.sha256(account.password.get_secret_value().encode()).hexdigest()
        self._key = (http.absolute(self._url), account.username, digest)

    def login(self) -> None:
        """``common.db.login``, then the user's context from ``res.user.get_preferences``."""
        account, method = self.account, "common.db.login"
        password = {"password": account.password.get_secret_value()}
        try:
            response = self._post(self._url, method, [account.username, password, account.language])
        except HttpRefused as exc:
            if exc.status != 404:
                raise
            raise RpcError(
                f"{self.where(method=method)}: database {account.database!r} does not exist on "
                f"{self.http.absolute('')} (HTTP 404)",
                "schema",
            ) from exc
        if response.status_code == 401:
            raise RpcError(
                f"{self.where(method=method)}: login refused for user {account.username!r} on "
                f"database {account.database!r} (wrong user name or password)",
                "auth",
            )
        result = self._result(response, method)
        if not (isinstance(result, list) and len(result) >= 2 and isinstance(result[0], int)):
            raise self._protocol_error(method, response, ValueError(f"result {result!r}"))
        token = f"{account.username}:{result[0]}:{result[1]}".encode()
        auth = "Session " + base64.b64encode(token).decode("ascii")
        method = "model.res.user.get_preferences"
        response = self._post(self._url, method, [True, {}], auth)
        preferences = self._result(response, method)
        if not isinstance(preferences, dict):
            raise self._protocol_error(method, response, ValueError("preferences are no object"))
        _SHARED.put(self._key, auth, preferences)
        self._use(auth, preferences)

    def version(self) -> str:
        """``common.server.version`` (the server's series, e.g. ``8.2``)."""
        method = "common.server.version"
        return str(self._result(self._post("rpc/", method, []), method))

    def execute(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: Mapping[str, Any] | None = None,
        fields: Sequence[str] = (),
    ) -> Any:
        """``model.<model>.<method>`` with the context as the last parameter (``kwargs``'s
        ``context`` merged into the session's; Tryton takes no other keywords); a session the
        server no longer knows (HTTP 401) is renewed once by logging in again."""
        name = f"model.{model}.{method}"
        extra = dict((kwargs or {}).get("context") or {})
        with self._lock:
            if self._auth is None:
                self._session()
            auth, context = str(self._auth), {**self._context, **extra}
        response = self._post(self._url, name, [*args, context], auth)
        if response.status_code == 401:
            log.info("%s: session refused (HTTP 401), logging in again", self.where(model, method))
            with self._lock:
                _SHARED.drop(self._key, auth)
                if self._auth == auth:  # nobody renewed it meanwhile
                    self._session()
                auth, context = str(self._auth), {**self._context, **extra}
            response = self._post(self._url, name, [*args, context], auth)
            if response.status_code == 401:
                raise RpcError(
                    f"{self.where(model, method)}: the server refused a fresh session (HTTP 401)",
                    "auth",
                )
        return self._result(response, name, model, fields)

    def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str] | None,
        limit: int | None,
        order: Order,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """``search_read [domain, offset, limit, order, fields]``; related reads nested."""
        tryton_order = [[name, direction.upper()] for name, direction in order]
        args = [domain, 0, limit, tryton_order, list(fields) if fields is not None else None]
        extra = {"context": context} if context else None
        rows = self.execute(model, "search_read", args, extra, fields=fields or ())
        return [_nest_related(row) for row in self._rows(model, "search_read", rows)]

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        """``read [ids, fields]``."""
        rows = self.execute(model, "read", [list(ids), list(fields)], fields=fields)
        return [_nest_related(row) for row in self._rows(model, "read", rows)]

    def create(
        self,
        model: str,
        rows: list[dict[str, Any]],
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """``create [[values, …]]``: one transaction for all rows."""
        extra = {"context": context} if context else None
        ids = self.execute(model, "create", [rows], extra, fields=names_of(rows))
        if not (isinstance(ids, list) and len(ids) == len(rows)):
            raise RpcError(f"{self.where(model, 'create')}: answered {ids!r}, not ids", "protocol")
        return [int(i) for i in ids]

    def write(
        self,
        model: str,
        changes: list[tuple[int, dict[str, Any]]],
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """``write [[id], values, [id], values, …]``: one transaction for all records."""
        args: list[Any] = []
        for record_id, values in changes:
            args += [[record_id], values]
        extra = {"context": context} if context else None
        self.execute(model, "write", args, extra, fields=names_of([v for _, v in changes]))

    def conjoin(self, *domains: Domain) -> Domain:
        """``["AND", d1, d2, …]`` (Tryton nests domains)."""
        parts = [d for d in domains if d]
        return parts[0] if len(parts) == 1 else (["AND", *parts] if parts else [])

    def disjoin(self, *domains: Domain) -> Domain:
        """``["OR", d1, d2, …]`` (each a nested domain)."""
        return domains[0] if len(domains) == 1 else ["OR", *domains]

    def since(self, field_name: str, value: Any, fallback: str | None) -> Domain:
        """``[field ≥ v]``, or ``["OR", [field ≥ v], [fallback ≥ v]]``: a record never written
        has no ``write_date`` in Tryton, only a ``create_date`` (which is never later)."""
        if fallback is None:
            return [[field_name, ">=", value]]
        return ["OR", [field_name, ">=", value], [fallback, ">=", value]]

    def filled(self, field_name: str, empty: bool = False) -> Domain:
        """``[[field, "!=", None]]`` or ``[[field, "=", None]]``."""
        return [[field_name, "=" if empty else "!=", None]]

    def one2many(self, rows: list[Any], existing: Sequence[int] | None) -> list[Any]:
        """``[["create", rows]]``, after ``["delete", ids]`` when replacing."""
        commands: list[Any] = [["delete", list(existing)]] if existing else []
        return [*commands, ["create", rows]] if rows else commands

    def many2many(self, add: Sequence[int], remove: Sequence[int]) -> list[Any]:
        """``[["add", ids], ["remove", ids]]`` (links only; the records stay)."""
        commands: list[Any] = [["add", list(add)]] if add else []
        return commands + ([["remove", list(remove)]] if remove else [])

    def close(self) -> None:
        """Let go of the session; it stays with the process for the next transport of this
        user (the server ends it after its idle timeout)."""
        with self._lock:
            self._auth = None

    def _session(self) -> None:
        """Take the process's session of this user, or log in for one."""
        shared = _SHARED.get(self._key)
        if shared is None:
            self.login()
        else:
            self._use(*shared)

    def _use(self, auth: str, preferences: dict[str, Any]) -> None:
        self._auth, self._context = auth, {**preferences, **self.account.context}

    # -- wire ------------------------------------------------------------------------------------

    def _post(
        self, url: str, method: str, params: list[Any], auth: str | None = None
    ) -> httpx.Response:
        xml = self.xml
        params = self._encode(method, params, lambda p: tryton_encode(p, xml=xml))
        if xml:
            content, headers = xml_dumps(method, params), {"Content-Type": "text/xml"}
        else:
            body = {"id": next(self._ids), "method": method, "params": params}
            content, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        return self.http.request("POST", url, content=content, headers=headers, ok=_UNAUTHORIZED)

    def _result(
        self,
        response: httpx.Response,
        method: str,
        model: str | None = None,
        fields: Sequence[str] = (),
    ) -> Any:
        """The call's result, or its error translated (naming ``model`` when given)."""
        if response.status_code == 401:
            raise RpcError(f"{self.where(method=method)}: not logged in (HTTP 401)", "auth")
        try:
            if self.xml:
                try:
                    return tryton_decode(xml_loads(response.content))
                except RpcFault as fault:
                    raise self._fault(fault) from None
            body = json.loads(response.content, object_hook=tryton_hook)
            if not isinstance(body, dict) or not ({"result", "error"} & body.keys()):
                raise ValueError("no result and no error")
            if body.get("error") is not None:
                raise _tryton_fault(body["error"])
            return body.get("result")
        except RpcFault as fault:
            raise self._error(fault, method, model, fields) from None
        except ValueError as exc:
            raise self._protocol_error(method, response, exc) from exc

    def _fault(self, fault: RpcFault) -> RpcFault:
        """An XML-RPC fault in the words of a JSON-RPC error (kind from the fault code)."""
        kind = self._FAULT_CODES.get(fault.code or 0, "ServerError")
        message = (
            fault.message.removesuffix(" - ").strip() if kind == "UserError" else fault.message
        )
        return RpcFault(kind, message, fault.code)

    def _error(
        self, fault: RpcFault, method: str, model: str | None, fields: Sequence[str]
    ) -> ErpbridgeError:
        where = self.where(model, method.rsplit(".", 1)[-1]) if model else self.where(method=method)
        message = self._scrub(fault.message)
        if fault.kind == "ConcurrencyException":
            return RpcRetriable(f"{where}: {message} (changed meanwhile; tried again later)")
        if fault.kind == "LoginException":
            return RpcError(f"{where}: the login needs more than a password: {message}", "auth")
        if fault.kind in ("UserError", "UserWarning"):
            return RpcError(f"{where}: {fault.kind}: {message}")
        name = message.strip("'\"")  # trytond answers an unknown model or field as its KeyError
        if model is not None and name == model:
            return RpcError(
                f"{where}: model {model} does not exist on the server (is its module activated?)",
                "schema",
            )
        if name and name in {part for f in fields for part in f.split(".")}:
            return RpcError(f"{where}: model {model} has no field {name}", "schema")
        return RpcError(f"{where}: server error: {message or fault.kind}")

    def _rows(self, model: str, method: str, rows: Any) -> list[dict[str, Any]]:
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RpcError(f"{self.where(model, method)}: answered {rows!r:.200}", "protocol")
        return rows


_UNAUTHORIZED = frozenset({401})


class _SharedSessions:
    """The Tryton sessions of this process, by server, user and password digest.

    A login costs trytond a password hash check (argon2: about a second of its CPU), and the
    engine opens a transport per run; so the transports of one user share a session, kept
    between runs, until the server answers HTTP 401 for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}

    def get(self, key: tuple[str, str, str]) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._sessions.get(key)

    def put(self, key: tuple[str, str, str], auth: str, preferences: dict[str, Any]) -> None:
        with self._lock:
            self._sessions[key] = (auth, preferences)

    def drop(self, key: tuple[str, str, str], auth: str) -> None:
        """Forget ``auth`` unless another transport already replaced it."""
        with self._lock:
            if self._sessions.get(key, ("",))[0] == auth:
                del self._sessions[key]


_SHARED = _SharedSessions()


def _tryton_fault(error: Any) -> RpcFault:
    """Tryton's JSON-RPC ``error``: ``[name, args]`` for its own exceptions, ``[text, traceback]``
    for any other."""
    if not (isinstance(error, list) and error and isinstance(error[0], str)):
        return RpcFault("ServerError", str(error))
    kind, args = error[0], error[1] if len(error) > 1 else None
    if kind == "UserError" and isinstance(args, list) and args:
        message, description = str(args[0]), str(args[1]) if len(args) > 1 and args[1] else ""
        return RpcFault(kind, f"{message} ({description})" if description else message)
    if kind in ("UserWarning", "LoginException") and isinstance(args, list) and len(args) > 1:
        return RpcFault(kind, str(args[1]))
    if kind == "ConcurrencyException":
        return RpcFault(kind, str(args))
    return RpcFault("ServerError", kind)


def _nest_related(row: dict[str, Any]) -> dict[str, Any]:
    """Tryton answers a related read (``party.name``) as ``"party.": {"id", "name"}``; it lands
    under ``party`` (replacing the bare id), so a mapping reads ``party.name``."""
    out = dict(row)
    for key, value in row.items():
        if key.endswith(".") and len(key) > 1:
            del out[key]
            if isinstance(value, list):
                value = [_nest_related(v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                value = _nest_related(value)
            out[key[:-1]] = value
    return out
