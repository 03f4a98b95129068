"""Odoo's external API over JSON-RPC (``/jsonrpc``) or XML-RPC (``/xmlrpc/2/…``).

``common.authenticate(db, user, password, {})`` gives the uid; every model call is
``object.execute_kw(db, uid, password, model, method, args, kwargs)`` — the API is stateless,
the password (or an API key in its place) travels with each call. Errors come back as
``{"error": {"code", "message", "data": {"name", "message", "debug"}}}`` (JSON) or a fault
(XML: 1 application error with its traceback, 2 UserError/ValidationError, 3 AccessDenied,
4 AccessError). Odoo answers empty values as ``false``: :meth:`OdooSession.search_read` turns
them into ``None`` except in boolean fields (types from ``fields_get``, asked once per model).

Odoo's ``search_read`` knows no dotted fields; the session reads them itself, as Tryton's server
does: ``partner_id.ref`` reads ``partner_id``, then ``ref`` of those partners in one ``read`` per
page, and puts the related record (``{"id": 7, "ref": "K-1"}``) where the ``[id, name]`` pair
was; a one2many or many2many becomes the list of its records. Deeper paths
(``order_line.product_id.default_code``) recurse, one ``read`` per level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from erpbridge.errors import ErpbridgeError
from erpbridge.transports.http import HttpClient
from erpbridge.transports.rpc.session import Account, Domain, Order, RpcSession, names_of
from erpbridge.transports.rpc.wire import (
    RpcError,
    RpcFault,
    RpcRetriable,
    odoo_encode,
    xml_dumps,
    xml_loads,
)

__all__ = ["OdooSession"]


class OdooSession(RpcSession):
    """Odoo's external API: ``/jsonrpc`` or ``/xmlrpc/2/common`` + ``/xmlrpc/2/object``."""

    name = "Odoo"
    replace_needs_ids = False

    _FAULT_CODES: ClassVar[dict[int, str]] = {
        2: "odoo.exceptions.UserError",
        3: "odoo.exceptions.AccessDenied",
        4: "odoo.exceptions.AccessError",
    }
    _RETRIABLE = re.compile(r"serializ|concurrent update|could not obtain lock|deadlock", re.I)
    _SCHEMA = re.compile(r"object \S+ doesn't exist|invalid field|unknown field", re.I)

    def __init__(self, channel: str, account: Account, http: HttpClient) -> None:
        super().__init__(channel, account, http)
        self._uid: int | None = None
        #: model → field → (type, related model), from ``fields_get``.
        self._types: dict[str, dict[str, tuple[str, str | None]]] = {}

    def login(self) -> None:
        """``common.authenticate(db, user, password, {})`` → the uid (``false``: refused)."""
        account = self.account
        args = [account.database, account.username, account.password.get_secret_value(), {}]
        uid = self._call("common", "authenticate", args)
        if not uid:  # false (Odoo's "no"), or nothing
            raise RpcError(
                f"{self.where(method='authenticate')}: login refused for user "
                f"{account.username!r} on database {account.database!r} (wrong user name, "
                "password or API key)",
                "auth",
            )
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise RpcError(f"{self.where(method='authenticate')}: answered {uid!r}", "protocol")
        self._uid = uid

    def version(self) -> str:
        """``common.version()['server_version']``."""
        info = self._call("common", "version", [])
        return str(info.get("server_version", "?")) if isinstance(info, dict) else str(info)

    def execute(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: Mapping[str, Any] | None = None,
        fields: Sequence[str] = (),
    ) -> Any:
        """``object.execute_kw(db, uid, password, model, method, args, kwargs)``."""
        with self._lock:
            if self._uid is None:
                self.login()
            uid = self._uid
        kwargs = dict(kwargs or {})
        if self.account.context:
            kwargs["context"] = {**self.account.context, **kwargs.get("context", {})}
        account = self.account
        password = account.password.get_secret_value()
        call = [account.database, uid, password, model, method, args, kwargs]
        return self._call("object", "execute_kw", call, model)

    def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str] | None,
        limit: int | None,
        order: Order,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """``search_read([domain], {fields, limit, order})``; ``false`` → ``None`` except in
        boolean fields."""
        kwargs: dict[str, Any] = {"order": _odoo_order(order)}
        if context:
            kwargs["context"] = dict(context)
        if limit is not None:
            kwargs["limit"] = limit
        own, related = _split(fields or ())
        if fields is not None:
            kwargs["fields"] = own
        rows = self.execute(model, "search_read", [domain], kwargs, own)
        return self._related(model, self._plain(model, "search_read", rows), related)

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        """``read([ids], {fields})``; dotted fields read through their relations."""
        own, related = _split(fields)
        rows = self.execute(model, "read", [list(ids)], {"fields": own}, own)
        return self._related(model, self._plain(model, "read", rows), related)

    def _related(
        self, model: str, rows: list[dict[str, Any]], related: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        """``rows`` with each relation of ``related`` replaced by the records it points at."""
        if not related or not rows:
            return rows
        described = self._described(model)
        for name, fields in related.items():
            kind, comodel = described.get(name, ("", None))
            if kind not in ("many2one", "one2many", "many2many") or comodel is None:
                raise RpcError(
                    f"{self.where(model, 'read')}: {name}.{fields[0]}: {name} is not a "
                    f"relational field of {model}",
                    "schema",
                )
            wanted = sorted({i for row in rows for i in _ids(row.get(name))})
            found = {r["id"]: r for r in self.read(comodel, wanted, fields)} if wanted else {}
            for row in rows:
                ids = _ids(row.get(name))
                if kind == "many2one":
                    row[name] = found.get(ids[0]) if ids else None
                else:
                    row[name] = [found[i] for i in ids if i in found]
        return rows

    def create(
        self,
        model: str,
        rows: list[dict[str, Any]],
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """``create([[values, …]])``: one transaction, a list of ids back."""
        extra = {"context": dict(context)} if context else None
        ids = self.execute(model, "create", [rows], extra, fields=names_of(rows))
        if isinstance(ids, int) and len(rows) == 1:
            ids = [ids]
        if not (isinstance(ids, list) and len(ids) == len(rows)):
            raise RpcError(f"{self.where(model, 'create')}: answered {ids!r}, not ids", "protocol")
        return [int(i) for i in ids]

    def write(
        self,
        model: str,
        changes: list[tuple[int, dict[str, Any]]],
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """``write([[id], values])`` per record (Odoo writes one set of values per call)."""
        extra = {"context": dict(context)} if context else None
        for record_id, values in changes:
            self.execute(model, "write", [[record_id], values], extra, fields=list(values))

    def conjoin(self, *domains: Domain) -> Domain:
        """Concatenation: Odoo's prefix domains are ANDed implicitly."""
        return [term for domain in domains for term in domain]

    def disjoin(self, *domains: Domain) -> Domain:
        """Prefix ``|`` over the domains, each made one expression (its implicit ANDs spelt
        ``&``)."""
        parts = [_one_expression(domain) for domain in domains]
        return ["|"] * (len(parts) - 1) + [term for part in parts for term in part]

    def since(self, field_name: str, value: Any, fallback: str | None) -> Domain:
        """``[(field, ">=", v)]``; Odoo sets ``write_date`` on create, so no fallback is needed."""
        if fallback is None:
            return [[field_name, ">=", value]]
        return ["|", [field_name, ">=", value], [fallback, ">=", value]]

    def filled(self, field_name: str, empty: bool = False) -> Domain:
        """``[(field, "!=", False)]`` or ``[(field, "=", False)]``."""
        return [[field_name, "=" if empty else "!=", False]]

    def close(self) -> None:
        """Nothing to end: Odoo's external API has no session."""

    def many2many(self, add: Sequence[int], remove: Sequence[int]) -> list[Any]:
        """``(4, id)`` links, ``(3, id)`` unlinks (the records stay)."""
        return [[4, i, 0] for i in add] + [[3, i, 0] for i in remove]

    def one2many(self, rows: list[Any], existing: Sequence[int] | None) -> list[Any]:
        """``(0, 0, values)`` per row, after ``(5, 0, 0)`` (clear) when replacing."""
        clear: list[Any] = [[5, 0, 0]] if existing is not None else []
        return [*clear, *([0, 0, row] for row in rows)]

    # -- wire ------------------------------------------------------------------------------------

    def _call(self, service: str, method: str, args: list[Any], model: str | None = None) -> Any:
        """One call of ``service.method``; errors translated (naming ``model`` when given)."""
        call = args[4] if model is not None else method
        params = self._encode(method, args, odoo_encode)
        if self.xml:
            url, headers = f"xmlrpc/2/{service}", {"Content-Type": "text/xml"}
            content = xml_dumps(method, params)
        else:
            url, headers = "jsonrpc", {"Content-Type": "application/json"}
            body = {
                "jsonrpc": "2.0",
                "method": "call",
                "params": {"service": service, "method": method, "args": params},
                "id": next(self._ids),
            }
            content = json.dumps(body).encode()
        response = self.http.request("POST", url, content=content, headers=headers)
        try:
            if self.xml:
                try:
                    return xml_loads(response.content)
                except RpcFault as fault:
                    raise self._fault(fault) from None
            return _odoo_result(json.loads(response.content))
        except RpcFault as fault:
            raise self._error(fault, model, str(call)) from None
        except ValueError as exc:
            raise self._protocol_error(method, response, exc) from exc

    def _fault(self, fault: RpcFault) -> RpcFault:
        kind = self._FAULT_CODES.get(fault.code or 0, "ServerError")
        message = fault.message
        if kind == "ServerError":  # code 1 carries the traceback: its last line says what
            lines = [line for line in message.strip().splitlines() if line.strip()]
            message = lines[-1].strip() if lines else message
        return RpcFault(kind, message, fault.code)

    def _error(self, fault: RpcFault, model: str | None, method: str) -> ErpbridgeError:
        where, message = self.where(model, method), self._scrub(fault.message)
        kind = fault.kind.rsplit(".", 1)[-1]
        if kind == "AccessDenied":
            return RpcError(f"{where}: access denied (wrong password or API key?)", "auth")
        if kind == "AccessError":
            return RpcError(f"{where}: AccessError: {message}", "forbidden")
        if self._RETRIABLE.search(f"{fault.kind} {message}"):
            return RpcRetriable(f"{where}: {message} (tried again later)")
        if self._SCHEMA.search(message):
            return RpcError(f"{where}: {message}", "schema")
        return RpcError(f"{where}: {kind}: {message}")

    def _plain(self, model: str, method: str, rows: Any) -> list[dict[str, Any]]:
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RpcError(f"{self.where(model, method)}: answered {rows!r:.200}", "protocol")
        if not rows:
            return rows
        types = self._described(model)
        return [
            {
                k: None if v is False and types.get(k, ("",))[0] != "boolean" else v
                for k, v in row.items()
            }
            for row in rows
        ]

    def _described(self, model: str) -> dict[str, tuple[str, str | None]]:
        """Each field's type and related model (``fields_get``, asked once per model)."""
        if model not in self._types:
            attributes = {"attributes": ["type", "relation"]}
            described = self.execute(model, "fields_get", [], attributes)
            self._types[model] = {
                name: (str(spec.get("type")), spec.get("relation") or None)
                for name, spec in (described or {}).items()
                if isinstance(spec, dict)
            }
        return self._types[model]


def _odoo_result(body: Any) -> Any:
    """``result`` of an Odoo JSON-RPC answer; :class:`RpcFault` for its ``error`` object."""
    if not isinstance(body, dict) or not ({"result", "error"} & body.keys()):
        raise ValueError("no result and no error")
    error = body.get("error")
    if error is None:
        return body.get("result")
    if not isinstance(error, dict):
        raise RpcFault("ServerError", str(error))
    data: dict[str, Any] = error["data"] if isinstance(error.get("data"), dict) else {}
    message = str(data.get("message") or error.get("message") or "")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    raise RpcFault(str(data.get("name") or "ServerError"), message, code)


def _split(fields: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The fields Odoo reads itself (each dotted one's first part), and the rest by relation."""
    own: dict[str, None] = {}
    related: dict[str, list[str]] = {}
    for name in fields:
        head, _, rest = name.partition(".")
        own[head] = None
        if rest:
            related.setdefault(head, []).append(rest)
    return list(own), related


def _ids(value: Any) -> list[int]:
    """The ids a relational value holds: a many2one's ``[id, name]``, an x2many's ids."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
        return [value[0]] if isinstance(value[0], int) else []
    if isinstance(value, list):
        return [i for i in value if isinstance(i, int) and not isinstance(i, bool)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


def _odoo_order(order: Order) -> str:
    return ", ".join(f"{name} {direction.lower()}" for name, direction in order)


def _one_expression(domain: Domain) -> Domain:
    """A prefix-notation domain as one expression: ``&`` before its top-level terms."""
    count, at = 0, 0
    while at < len(domain):
        at = _skip(domain, at)
        count += 1
    return ["&"] * (count - 1) + list(domain) if count > 1 else list(domain)


def _skip(domain: Domain, at: int) -> int:
    """The index after the expression starting at ``at``."""
    term = domain[at]
    if term in ("|", "&"):
        return _skip(domain, _skip(domain, at + 1))
    if term == "!":
        return _skip(domain, at + 1)
    return at + 1
