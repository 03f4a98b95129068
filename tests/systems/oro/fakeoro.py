"""A stand-in for OroCommerce's back-office API, served on 127.0.0.1 by ``httpserve``.

No Oro server can run here. This one answers with the shapes Oro's published API documentation
gives (doc.oroinc.com "Web API": JSON:API with ``application/vnd.api+json``, the client
credentials grant at ``/oauth2-token``, filters ``filter[x]``/``filter[x][gte]``/``[exists]``,
``page[number]``/``page[size]``, ``sort``, ``include``, ``errors`` objects with
``source.pointer``/``source.parameter``; and the resource examples of OroCommerce's
``Resources/doc/api/*.md``: customers, customerusers, orders with orderlineitems,
productprices, inventorylevels). The records are those examples, with an ``erpCode`` custom
field on customers (what an integration adds under Entity Management). It keeps what it is
sent in memory and logs every request, so a test can check the Oro side of a flow.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from httpserve import QuietHandler, serve_handler

CLIENT_ID, CLIENT_SECRET, TOKEN = "erpbridge", "s3cret-oro", "oro-access-token-1"
MEDIA = "application/vnd.api+json"
API = "/admin/api/"


def _r(kind: str, rid: str, attributes: dict[str, Any], **relations: Any) -> dict[str, Any]:
    relationships = {}
    for name, value in relations.items():
        if isinstance(value, list):
            relationships[name] = {"data": [{"type": t, "id": i} for t, i in value]}
        elif value is None:
            relationships[name] = {"data": None}
        else:
            relationships[name] = {"data": {"type": value[0], "id": value[1]}}
    return {"type": kind, "id": rid, "attributes": attributes, "relationships": relationships}


STAMP = "2017-08-15T10:00:00Z"


def seed() -> dict[str, dict[str, dict[str, Any]]]:
    """The documentation's example resources, by type and id."""
    resources = [
        _r("customers", "1", {"name": "Company AB", "erpCode": "C-1001", "createdAt": STAMP,
           "updatedAt": "2017-08-15T10:00:00Z"}, users=[("customerusers", "1")],
           addresses=[("customeraddresses", "1")], group=("customer_groups", "1")),
        _r("customers", "2", {"name": "Company AC", "erpCode": "C-1002", "createdAt": STAMP,
           "updatedAt": "2017-08-16T10:00:00Z"}, users=[], addresses=[], group=None),
        _r("customers", "3", {"name": "Walk-in customer", "erpCode": None, "createdAt": STAMP,
           "updatedAt": "2017-08-16T11:00:00Z"}, users=[], addresses=[], group=None),
        _r("customerusers", "1", {"email": "AmandaFCole@example.org", "firstName": "Amanda",
           "lastName": "Cole", "enabled": True, "confirmed": True, "createdAt": STAMP,
           "updatedAt": STAMP}, customer=("customers", "1"),
           roles=[("customeruserroles", "1")], website=("websites", "1")),
        _r("customeraddresses", "1", {"label": "Address 01", "street": "1215 Caldwell Road",
           "city": "Rochester", "postalCode": "14608", "createdAt": STAMP, "updatedAt": STAMP},
           country=("countries", "US"), region=("regions", "US-NY"),
           customer=("customers", "1")),
        _r("orders", "1", {"identifier": "FR1012401Z", "poNumber": "CV032342USDD",
           "customerNotes": "Please, call before delivery", "shipUntil": "2017-08-15",
           "currency": "USD", "subtotalValue": "447.4500", "totalValue": "447.4500",
           "createdAt": "2017-08-15T10:00:00Z", "updatedAt": "2017-08-15T10:00:00Z"},
           customer=("customers", "1"), customerUser=("customerusers", "1"),
           lineItems=[("orderlineitems", "1")], billingAddress=("orderaddresses", "1"),
           shippingAddress=("orderaddresses", "1"), internalStatus=("orderinternalstatuses",
           "open"), status=("orderstatuses", "open")),
        _r("orderlineitems", "1", {"productSku": "4HC51", "productName": "Physician's 5-Pocket "
           "Lab Coat", "quantity": 19, "productUnitCode": "item", "value": "23.5500",
           "currency": "USD", "priceType": 10, "shipBy": "2016-04-30"},
           order=("orders", "1"), product=("products", "23"), productUnit=("productunits", "item")),
        _r("orderaddresses", "1", {"label": "Address 01", "street": "1215 Caldwell Road",
           "city": "Rochester", "postalCode": "14608", "firstName": "Amanda",
           "lastName": "Cole"}, country=("countries", "US"), region=("regions", "US-NY")),
        _r("products", "23", {"sku": "4HC51", "createdAt": STAMP, "updatedAt": STAMP}),
        _r("products", "24", {"sku": "2RW93", "createdAt": STAMP, "updatedAt": STAMP}),
        _r("pricelists", "1", {"name": "Default Price List", "active": True}),
        _r("pricelists", "2", {"name": "C-1001", "active": True}),
        _r("productprices", "6390cd7b-7c1b-11e7-bda0-080027fb53ad-1", {"quantity": 24,
           "currency": "USD", "value": "126.7800"}, priceList=("pricelists", "1"),
           product=("products", "23"), unit=("productunits", "item")),
        _r("inventorylevels", "1", {"quantity": "51"}, product=("products", "23"),
           productUnitPrecision=("productunitprecisions", "1"),
           organization=("organizations", "1")),
        _r("inventorylevels", "2", {"quantity": "0"}, product=("products", "24"),
           productUnitPrecision=("productunitprecisions", "2"),
           organization=("organizations", "1")),
        *(_r("orderstatuses", s, {"name": s.title()}) for s in
          ("open", "pending", "shipped", "closed", "cancelled")),
        *(_r("productunits", u, {"defaultPrecision": 0}) for u in ("item", "piece", "set")),
    ]  # fmt: skip
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for item in resources:
        found.setdefault(item["type"], {})[item["id"]] = item
    return found


#: Fields each type's create needs (the docs' "The required field"), and its not-blank ones.
REQUIRED = {
    "customers": ["name"],
    "productprices": ["quantity", "currency", "value", "priceList", "product", "unit"],
    "orders": ["customer", "lineItems"],
    "orderlineitems": ["quantity", "productUnit"],
}
#: Fields the service keeps to itself (read-only: a passed value is ignored).
READ_ONLY = {"inventorylevels": {"product", "productUnitPrecision", "organization"}}
CREATABLE = {"customers", "productprices", "orders"}


def error(status: int, title: str, detail: str, **source: str) -> tuple[int, dict[str, Any]]:
    item: dict[str, Any] = {"status": str(status), "title": title, "detail": detail}
    if source:
        item["source"] = source
    return status, {"errors": [item]}


class FakeOro:
    """The resources, the requests seen, and what the next answers should be."""

    def __init__(self) -> None:
        self.data = seed()
        self.requests: list[dict[str, Any]] = []
        self.tokens_issued = 0
        self.lock = threading.Lock()
        self.next_id = 100

    # -- what tests look at ------------------------------------------------------------------

    def find(self, kind: str, **attributes: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.data.get(kind, {}).values()
            if all(_value(r, k) == v for k, v in attributes.items())
        ]

    def touch(self, kind: str, rid: str, **attributes: Any) -> None:
        """Change a resource the way a user in Oro's back office would."""
        item = self.data[kind][rid]
        item["attributes"].update(attributes, updatedAt=_now())

    def writes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] in ("POST", "PATCH")
                and r["path"] != "/oauth2-token"]  # fmt: skip

    # -- answering ---------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        with self.lock:
            self.requests.append({"method": method, "path": url.path, "query": query,
                                  "headers": headers, "body": _json(body)})  # fmt: skip
            if url.path == "/oauth2-token" and method == "POST":
                return self._token(headers, body)
            if not url.path.startswith(API):
                return error(404, "not found", f"No route found for {url.path}")
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return error(401, "authentication required", "Authentication is required.")
            if MEDIA not in headers.get("accept", ""):
                return error(406, "not acceptable", f"The Accept header must be {MEDIA}.")
            parts = url.path.removeprefix(API).strip("/").split("/")
            kind, rid = parts[0], (parts[1] if len(parts) > 1 else None)
            if method in ("POST", "PATCH") and headers.get("content-type") != MEDIA:
                return error(415, "unsupported media type", f"Content-Type must be {MEDIA}.")
            if method == "GET":
                return self._get(kind, rid, query)
            document = _json(body)
            if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
                return error(400, "request data constraint", "The primary data must exist.",
                             pointer="/data")  # fmt: skip
            if method == "POST" and rid is None:
                return self._create(kind, document)
            if method == "PATCH" and rid is not None:
                return self._update(kind, rid, document)
            return error(405, "method not allowed", f"{method} is not allowed here.")

    def _token(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if headers.get("content-type", "").startswith("application/json"):
            form = _json(body) or {}
        else:
            form = dict(parse_qsl(body.decode()))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client", "message": "Client authentication failed"}
        self.tokens_issued += 1
        return 200, {"token_type": "Bearer", "expires_in": 3600, "access_token": TOKEN}

    def _get(self, kind: str, rid: str | None, query: dict[str, str]) -> tuple[int, Any]:
        pool = self.data.get(kind)
        if pool is None:
            return error(404, "not found", f"Unknown entity type: {kind}.")
        if rid is not None:
            if rid not in pool:
                return error(404, "not found", "The entity does not exist.")
            return 200, self._document([pool[rid]], query, single=True)
        rows = list(pool.values())
        for name, value in query.items():
            if not name.startswith("filter["):
                continue
            field, _, rest = name[len("filter[") :].partition("]")
            operator = rest.strip("[]") or "eq"
            if not any(_has(r, field) for r in rows) and rows:
                return error(400, "filter constraint", f'Filter "{name}" is not supported.',
                             parameter=name)  # fmt: skip
            rows = [r for r in rows if _holds(_value(r, field), operator, value)]
        for key in reversed(query.get("sort", "id").split(",")):
            field = key.lstrip("-")
            rows.sort(key=lambda r, f=field: _sortable(_value(r, f)), reverse=key.startswith("-"))
        number = int(query.get("page[number]", "1"))
        size = int(query.get("page[size]", "10"))
        page = rows if size == -1 else rows[(number - 1) * size : number * size]
        return 200, self._document(page, query, single=False)

    def _document(self, rows: list[dict[str, Any]], query: dict[str, str], single: bool) -> Any:
        document: dict[str, Any] = {"data": rows[0] if single else rows}
        included: dict[tuple[str, str], dict[str, Any]] = {}
        for path in filter(None, query.get("include", "").split(",")):
            for row in rows:
                self._include(row, path.split("."), included)
        if included:
            document["included"] = list(included.values())
        return copy.deepcopy(document)

    def _include(
        self, row: dict[str, Any], path: list[str], found: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        data = row.get("relationships", {}).get(path[0], {}).get("data")
        for ref in data if isinstance(data, list) else [data] if data else []:
            item = self.data.get(ref["type"], {}).get(ref["id"])
            if item is None:
                continue
            found[(ref["type"], ref["id"])] = item
            if len(path) > 1:
                self._include(item, path[1:], found)

    def _create(self, kind: str, document: dict[str, Any]) -> tuple[int, Any]:
        if kind not in CREATABLE:
            return error(405, "method not allowed", f"Creating {kind} is not allowed.")
        data = document["data"]
        problem = _invalid(kind, data, "/data", update=False)
        if problem:
            return problem
        local: dict[tuple[str, str], str] = {}
        for n, item in enumerate(document.get("included", [])):
            problem = _invalid(item.get("type", ""), item, f"/included/{n}", update=False)
            if problem:
                return problem
            local[(item["type"], item["id"])] = self._new_id()
        for item in document.get("included", []):
            self._store(item["type"], local[(item["type"], item["id"])], item, local)
        return 201, {"data": copy.deepcopy(self._store(kind, self._new_id(), data, local))}

    def _store(
        self, kind: str, rid: str, data: dict[str, Any], local: dict[tuple[str, str], str]
    ) -> dict[str, Any]:
        relationships = {}
        for name, link in data.get("relationships", {}).items():
            value = link.get("data")
            refs = value if isinstance(value, list) else [value] if value else []
            new = [{"type": r["type"], "id": local.get((r["type"], r["id"]), r["id"])}
                   for r in refs]  # fmt: skip
            relationships[name] = {"data": new if isinstance(value, list) else new[0] if new
                                   else None}  # fmt: skip
        attributes = {**data.get("attributes", {}), "createdAt": _now(), "updatedAt": _now()}
        item = {"type": kind, "id": rid, "attributes": attributes, "relationships": relationships}
        self.data.setdefault(kind, {})[rid] = item
        return item

    def _update(self, kind: str, rid: str, document: dict[str, Any]) -> tuple[int, Any]:
        data = document["data"]
        if data.get("id") != rid or data.get("type") != kind:
            return error(409, "conflict constraint", "The entity identifier does not match.",
                         pointer="/data/id")  # fmt: skip
        item = self.data.get(kind, {}).get(rid)
        if item is None:
            return error(404, "not found", "The entity does not exist.")
        problem = _invalid(kind, data, "/data", update=True)
        if problem:
            return problem
        item["attributes"].update(data.get("attributes", {}), updatedAt=_now())
        for name, link in data.get("relationships", {}).items():
            if name not in READ_ONLY.get(kind, set()):
                item["relationships"][name] = link
        return 200, {"data": copy.deepcopy(item)}

    def _new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)


def _invalid(kind: str, data: dict[str, Any], at: str, update: bool) -> tuple[int, Any] | None:
    """The documentation's validation errors: a required field blank, a name too long."""
    name = data.get("attributes", {}).get("name")
    if kind == "customers" and isinstance(name, str) and len(name) > 255:
        return error(400, "length constraint",
                     "This value is too long. It should have 255 characters or less.",
                     pointer=f"{at}/attributes/name")  # fmt: skip
    if update:
        for field, value in data.get("attributes", {}).items():
            if field in REQUIRED.get(kind, []) and value in (None, ""):
                return error(400, "not blank constraint", "This value should not be blank.",
                             pointer=f"{at}/attributes/{field}")  # fmt: skip
        return None
    for name in REQUIRED.get(kind, []):
        attributes, relationships = data.get("attributes", {}), data.get("relationships", {})
        if name in relationships:
            if relationships[name].get("data") in (None, []):
                return error(400, "not blank constraint", "This value should not be blank.",
                             pointer=f"{at}/relationships/{name}/data")  # fmt: skip
        elif attributes.get(name) in (None, ""):
            where = "attributes" if name not in ("customer", "lineItems") else "relationships"
            return error(400, "not blank constraint", "This value should not be blank.",
                         pointer=f"{at}/{where}/{name}")  # fmt: skip
    return None


def _has(row: dict[str, Any], field: str) -> bool:
    return field == "id" or field in row["attributes"] or field in row.get("relationships", {})


def _value(row: dict[str, Any], field: str) -> Any:
    if field == "id":
        return row["id"]
    if field in row["attributes"]:
        return row["attributes"][field]
    link = row.get("relationships", {}).get(field, {}).get("data")
    if isinstance(link, list):
        return [x["id"] for x in link]
    return link["id"] if link else None


def _holds(have: Any, operator: str, wanted: str) -> bool:
    """Oro's filter operators, comparing numbers as numbers and times as times."""
    if operator == "exists":
        return (have not in (None, [])) == (wanted == "true")
    if have is None:
        return operator == "neq"
    if isinstance(have, list):
        return any(_holds(v, operator, wanted) for v in have)
    choices = [_comparable(w) for w in wanted.split(",")]
    left, right = _comparable(str(have)), choices[0]
    if type(left) is not type(right):
        left, right, choices = str(have), wanted, wanted.split(",")  # type: ignore[assignment]
    return {
        "eq": lambda: left in choices,
        "neq": lambda: left != right,
        "gt": lambda: left > right,
        "gte": lambda: left >= right,
        "lt": lambda: left < right,
        "lte": lambda: left <= right,
    }[operator]()


def _comparable(text: str) -> Any:
    if _numeric(text):
        return float(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sortable(value: Any) -> Any:
    text = str(value)
    return (0, float(text), "") if _numeric(text) else (1, 0.0, text)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class Handler(QuietHandler):
    oro: FakeOro

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = self.oro.answer(self.command, self.path, headers, body)
        raw = json.dumps(answer).encode()
        self.send_response(status)
        kind = MEDIA if self.path.startswith(API) else "application/json"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


@contextmanager
def serve_oro() -> Iterator[tuple[FakeOro, str]]:
    """A fake Oro and the back-office API's base URL (``http://127.0.0.1:<port>/admin/api/``)."""
    fake = FakeOro()
    handler = type("OroHandler", (Handler,), {"oro": fake})
    with serve_handler(handler, poll_interval=0.05) as served:
        yield fake, f"{served.url}{API}"
