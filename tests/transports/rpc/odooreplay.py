"""A stand-in for Odoo's external API, served on 127.0.0.1 by ``httpserve``.

Odoo cannot run here. This server answers with the request and response shapes of Odoo's
documented external API (odoo.com/documentation/17.0/developer/reference/external_api.html:
``common.version``, ``authenticate``, ``execute_kw`` with ``search_read``, ``read``, ``create``,
``write``, ``fields_get``; JSON-RPC errors as Odoo's ``JsonRPCDispatcher`` shapes them, XML-RPC
faults with Odoo's fault codes). Its records are the documentation's ``res.partner`` examples,
and, for the presets, records of ``product.template``, ``product.product``, ``sale.order`` with
its lines, ``stock.picking`` and ``stock.quant`` shaped as Odoo 17's models define them (field
names, types and relations as ``fields_get`` reports them; a many2one read as ``[id, name]``,
an x2many as ids, empty values as ``false``). To answer paged and incremental reads it filters
with a few domain operators and sorts, nothing more; one2many line commands ``(0, 0, values)``
create lines, ``(5, 0, 0)`` clears them; ``action_confirm`` confirms a sale.
"""

from __future__ import annotations

import copy
import json
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from httpserve import QuietHandler, serve_handler

DATABASE, USER, PASSWORD, UID = "mycompany", "admin", "s3cret-api-key", 2

VERSION = {
    "server_version": "17.0",
    "server_version_info": [17, 0, 0, "final", 0, ""],
    "server_serie": "17.0",
    "protocol_version": 1,
}

# The documentation's search_read example, with the write_date every Odoo record has.
PARTNERS = [
    {"id": 7, "name": "Agrolait", "country_id": [21, "Belgium"], "comment": False},
    {"id": 18, "name": "Axelor", "country_id": [76, "France"], "comment": False},
    {"id": 12, "name": "Bank Wealthy and sons", "country_id": [233, "United Kingdom"]},
    {"id": 14, "name": "Best Designers", "country_id": [105, "India"], "comment": False},
    {"id": 17, "name": "Camptocamp", "country_id": [76, "France"], "comment": False},
]
for number, partner in enumerate(PARTNERS):
    partner.setdefault("comment", False)
    partner.update(is_company=True, ref=False, write_date=f"2024-05-0{1 + number % 3} 10:00:00")

FIELDS = {  # fields_get(attributes=["type"])
    "name": {"type": "char"},
    "country_id": {"type": "many2one"},
    "comment": {"type": "html"},
    "is_company": {"type": "boolean"},
    "ref": {"type": "char"},
    "write_date": {"type": "datetime"},
    "child_ids": {"type": "one2many"},
    "credit_limit": {"type": "float"},
}

JSON_ERROR = {
    "code": 200,
    "message": "Odoo Server Error",
    "data": {
        "name": "odoo.exceptions.ValidationError",
        "debug": 'Traceback (most recent call last):\n  File "/odoo/http.py" ...',
        "message": "The VAT number [XX123] does not seem to be valid.",
        "arguments": ["The VAT number [XX123] does not seem to be valid."],
        "context": {},
    },
}


class OdooError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


class FakeOdoo:
    """The recorded answers, and every call the transport made.

    ``models``: model → its records; ``fields``: model → ``fields_get``'s answer; ``defaults``:
    model → the values a new record starts with. A relational
    field described with its ``relation`` is written like Odoo does (ids, line commands) and
    read back as ``[id, name]`` or ids; one described by its type alone is stored as sent.
    """

    def __init__(
        self,
        models: dict[str, list[dict[str, Any]]] | None = None,
        fields: dict[str, dict[str, dict[str, Any]]] | None = None,
        defaults: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.models = copy.deepcopy(models if models is not None else {"res.partner": PARTNERS})
        self.fields = fields if fields is not None else {"res.partner": FIELDS}
        self.defaults = defaults or {}  # model → values a create starts from (a sale's state)
        self.partners = self.models.get("res.partner", [])
        self.calls: list[tuple[str, str, list[Any]]] = []
        self.fail_next: tuple[str, str] | None = None  # (exception name, message)
        self.raw_next: bytes | None = None

    def answer(self, service: str, method: str, args: list[Any]) -> Any:
        self.calls.append((service, method, args))
        if service == "common" and method == "version":
            return VERSION
        if service == "common" and method == "authenticate":
            return UID if args == [DATABASE, USER, PASSWORD, {}] else False
        db, uid, password, model, call, params, kwargs = args
        if (db, uid, password) != (DATABASE, UID, PASSWORD):
            raise OdooError("odoo.exceptions.AccessDenied", "Access Denied")
        if self.fail_next is not None:
            name, message = self.fail_next
            self.fail_next = None
            raise OdooError(name, message)
        if model not in self.models:
            raise OdooError("odoo.exceptions.UserError", f"Object {model} doesn't exist")
        if call == "action_confirm":
            return self._confirm(model, params)
        return getattr(self, f"_{call}")(model, params, kwargs)

    # -- reading -----------------------------------------------------------------------------

    def _fields_get(self, model: str, params: list[Any], kwargs: dict[str, Any]) -> Any:
        return self.fields[model]

    def _search_read(self, model: str, params: list[Any], kwargs: dict[str, Any]) -> Any:
        (domain,) = params
        rows = [r for r in self.models[model] if _matches(r, domain)]
        if kwargs.get("context", {}).get("active_test", True):  # archived records stay out
            rows = [r for r in rows if r.get("active", True) is not False]
        for key in reversed(kwargs.get("order", "id asc").split(", ")):
            field, direction = key.split()
            rows.sort(key=lambda r, f=field: _sortable(r.get(f)), reverse=direction == "desc")
        rows = rows[: kwargs["limit"]] if "limit" in kwargs else rows
        return [self._shown(model, r, kwargs.get("fields")) for r in rows]

    def _read(self, model: str, params: list[Any], kwargs: dict[str, Any]) -> Any:
        (ids,) = params
        by_id = {r["id"]: r for r in self.models[model]}
        return [self._shown(model, by_id[i], kwargs.get("fields")) for i in ids if i in by_id]

    def _shown(self, model: str, row: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
        """A record as Odoo answers it: only the fields asked for (and the id)."""
        for name in names or []:
            if name not in row and name not in self.fields[model] and name != "id":
                raise OdooError("ValueError", f"Invalid field {name!r} on model {model!r}")
        return {k: v for k, v in row.items() if names is None or k in names or k == "id"} | {
            n: False for n in names or [] if n not in row and n != "id"
        }

    # -- writing -----------------------------------------------------------------------------

    def _create(self, model: str, params: list[Any], kwargs: dict[str, Any]) -> Any:
        (rows,) = params
        ids = []
        for values in rows:
            record_id = max((r["id"] for r in self.models[model]), default=0) + 60  # docs: 78
            record = {"id": record_id, "write_date": "2024-05-09 12:00:00"}
            record.update(self.defaults.get(model, {}))
            self.models[model].append(record)
            self._apply(model, record, values)
            ids.append(record_id)
        return ids

    def _write(self, model: str, params: list[Any], kwargs: dict[str, Any]) -> Any:
        ids, values = params
        for record in self.models[model]:
            if record["id"] in ids:
                self._apply(model, record, values)
                record["write_date"] = "2024-05-09 13:00:00"
        return True

    def _apply(self, model: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        for name, value in values.items():
            spec = self.fields[model].get(name, {})
            relation = spec.get("relation")
            if relation and spec["type"] == "many2one" and isinstance(value, int):
                value = [value, self._name_of(relation, value)]
            elif relation and spec["type"] == "one2many" and isinstance(value, list):
                value = self._lines(relation, spec["relation_field"], record, value)
            record[name] = value

    def _lines(
        self, model: str, inverse: str, parent: dict[str, Any], commands: list[Any]
    ) -> list[int]:
        """Odoo's one2many commands: ``(0, 0, values)`` creates a line, ``(5, 0, 0)`` clears."""
        ids = [] if any(c[0] == 5 for c in commands) else list(parent.get("_lines", []))
        for command in commands:
            if command[0] == 0:
                (created,) = self._create(model, [[{**command[2], inverse: parent["id"]}]], {})
                ids.append(created)
        parent["_lines"] = ids
        return ids

    def _confirm(self, model: str, params: list[Any]) -> Any:
        (ids,) = params
        for record in self.models[model]:
            if record["id"] in ids and record.get("state") in ("draft", "sent"):
                record["state"] = "sale"
        return True

    def _name_of(self, model: str, record_id: int) -> str:
        for row in self.models.get(model, []):
            if row["id"] == record_id:
                return str(row.get("display_name") or row.get("name") or record_id)
        raise OdooError("odoo.exceptions.MissingError", f"Record does not exist ({model})")


def _sortable(value: Any) -> Any:
    return (value is False or value is None, str(value) if not isinstance(value, int) else value)


def _matches(record: dict[str, Any], domain: list[Any]) -> bool:
    """Odoo's prefix notation: ``|``, ``&``, ``!`` before terms; top-level terms ANDed."""

    def expression(at: int) -> tuple[bool, int]:
        term = domain[at]
        if term in ("|", "&"):
            left, after = expression(at + 1)
            right, end = expression(after)
            return (left or right) if term == "|" else (left and right), end
        if term == "!":
            value, end = expression(at + 1)
            return not value, end
        return _holds(record, term), at + 1

    at, result = 0, True
    while at < len(domain):
        value, at = expression(at)
        result = result and value
    return result


def _holds(record: dict[str, Any], term: Any) -> bool:
    field, operator, value = term
    have = record.get(field, False)
    if operator == "in" and isinstance(have, list) and not _pair(have):  # an x2many: any id
        return any(item in value for item in have)
    if _pair(have):  # a many2one compares by its id
        have = have[0]
    return {
        "=": lambda: have == value,
        "!=": lambda: have != value,
        ">": lambda: have > value,
        ">=": lambda: have >= value,
        "<": lambda: have < value,
        "in": lambda: have in value,
        "not in": lambda: have not in value,
    }[operator]()


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)


# Odoo's XML-RPC fault codes (odoo/addons/base/controllers/rpc.py).
FAULT_CODES = {
    "odoo.exceptions.UserError": 2,
    "odoo.exceptions.ValidationError": 2,
    "odoo.exceptions.AccessDenied": 3,
    "odoo.exceptions.AccessError": 4,
}


class Handler(QuietHandler):
    odoo: FakeOdoo

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.odoo.raw_next is not None:
            reply, self.odoo.raw_next = self.odoo.raw_next, None
            return self._send(reply, "text/xml")
        if self.path == "/jsonrpc":
            request = json.loads(body)
            params = request["params"]
            try:
                result = self.odoo.answer(params["service"], params["method"], params["args"])
                reply = {"jsonrpc": "2.0", "id": request["id"], "result": result}
            except OdooError as exc:
                error = copy.deepcopy(JSON_ERROR)
                error["data"].update(name=exc.name, message=exc.message, arguments=[exc.message])
                reply = {"jsonrpc": "2.0", "id": request["id"], "error": error}
            return self._send(json.dumps(reply).encode(), "application/json")
        service = self.path.removeprefix("/xmlrpc/2/")
        args, method = xmlrpc.client.loads(body)
        try:
            answer = xmlrpc.client.dumps(
                (self.odoo.answer(service, method, list(args)),), None, True
            )
        except OdooError as exc:
            code = FAULT_CODES.get(exc.name)
            text = (
                exc.message if code else f"Traceback (most recent call last):\n...\n{exc.message}"
            )
            answer = xmlrpc.client.dumps(xmlrpc.client.Fault(code or 1, text))
        return self._send(answer.encode(), "text/xml")

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_odoo(fake: FakeOdoo) -> Iterator[str]:
    """Serve ``fake``; yields its base URL (``http://127.0.0.1:<port>/``)."""
    handler = type("OdooHandler", (Handler,), {"odoo": fake})
    with serve_handler(handler, poll_interval=0.05) as served:
        yield f"{served.url}/"
