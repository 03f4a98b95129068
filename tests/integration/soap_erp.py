"""A small ERP-like SOAP service (spyne) for the SOAP transport's integration tests.

``CustomerService`` keeps customers with a nested address and a server-set ``modified_at`` in an
SQLite file: ``ListCustomers(changedSince, offset, limit)`` pages them in ``(modified_at, id)``
order (``modified_at >= changedSince``), ``GetCustomer``, ``UpsertCustomer`` (by ``code``, returns
the id), ``DeleteCustomer`` and ``SetLock`` (a user editing a customer in the ERP: an upsert of it
answers the fault ``Server.Locked`` until the lock is released). Bad input answers
``Client.NotFound`` / ``Client.Invalid``.

Every request needs HTTP basic auth; a SOAP POST may instead carry a WS-Security UsernameToken
(PasswordText). Besides the service at ``/`` (WSDL at ``/?wsdl``) it serves broken answers for the
bad-input tests: ``/html500`` (an HTML error page, HTTP 500), ``/notxml`` (HTTP 200, plain text),
``/malformed.wsdl`` (XML that breaks off); anything else is 404.

Run: ``python soap_erp.py --db FILE --user U --password P [--port 0]``. It prints its URL
(``http://127.0.0.1:PORT/``) on one line once it listens, and serves until terminated.
"""

from __future__ import annotations

import argparse
import base64
import io
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lxml import etree
from spyne import (
    Application,
    Array,
    Boolean,
    ComplexModel,
    DateTime,
    Decimal,
    Fault,
    Integer,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

TNS = "urn:erpbridge:test:erp"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT,
    credit_limit TEXT,
    locked INTEGER NOT NULL DEFAULT 0,
    street TEXT, postal_code TEXT, city TEXT, country TEXT,
    modified_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (code TEXT PRIMARY KEY);
"""
COLUMNS = "id, code, name, email, credit_limit, locked, street, postal_code, city, country, " + (
    "modified_at"
)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Wsgi = Callable[[Environ, StartResponse], Iterable[bytes]]


class Address(ComplexModel):
    """A postal address, nested in a customer."""

    __namespace__ = TNS
    street = Unicode
    postal_code = Unicode
    city = Unicode
    country = Unicode


class Customer(ComplexModel):
    """A customer as the ERP keeps it; ``id`` and ``modified_at`` are set by the ERP."""

    __namespace__ = TNS
    id = Integer
    code = Unicode
    name = Unicode
    email = Unicode
    credit_limit = Decimal
    locked = Boolean
    address = Address
    modified_at = DateTime


class CustomerPage(ComplexModel):
    """One page of ``ListCustomers`` and the number of matching customers."""

    __namespace__ = TNS
    customers = Array(Customer)
    total = Integer


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def to_customer(row: sqlite3.Row) -> Customer:
    address = None
    if any(row[name] is not None for name in ("street", "postal_code", "city", "country")):
        address = Address(
            street=row["street"],
            postal_code=row["postal_code"],
            city=row["city"],
            country=row["country"],
        )
    return Customer(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        email=row["email"],
        credit_limit=None if row["credit_limit"] is None else D(row["credit_limit"]),
        locked=bool(row["locked"]),
        address=address,
        modified_at=datetime.fromisoformat(row["modified_at"]),
    )


def next_stamp(db: sqlite3.Connection) -> str:
    """Now (UTC), but always after the newest stamp: the order of changes is the stamp order."""
    stamp = datetime.now(UTC)
    newest = db.execute("SELECT max(modified_at) FROM customers").fetchone()[0]
    if newest is not None and datetime.fromisoformat(newest) >= stamp:
        stamp = datetime.fromisoformat(newest) + timedelta(microseconds=1)
    return stamp.isoformat()


class CustomerService(ServiceBase):
    """Customers of the ERP."""

    @rpc(DateTime, Integer, Integer, _returns=CustomerPage)
    def ListCustomers(ctx, changedSince, offset, limit):
        db = connect(ctx.app.db_path)
        since = (changedSince or datetime(1, 1, 1, tzinfo=UTC)).astimezone(UTC).isoformat()
        total = db.execute(
            "SELECT count(*) FROM customers WHERE modified_at >= ?", (since,)
        ).fetchone()[0]
        rows = db.execute(
            f"SELECT {COLUMNS} FROM customers WHERE modified_at >= ? "
            "ORDER BY modified_at, id LIMIT ? OFFSET ?",
            (since, limit if limit is not None else -1, offset or 0),
        ).fetchall()
        db.close()
        return CustomerPage(customers=[to_customer(r) for r in rows], total=total)

    @rpc(Integer, _returns=Customer)
    def GetCustomer(ctx, id):
        db = connect(ctx.app.db_path)
        row = db.execute(f"SELECT {COLUMNS} FROM customers WHERE id = ?", (id,)).fetchone()
        db.close()
        if row is None:
            raise Fault(faultcode="Client.NotFound", faultstring=f"no customer with id {id}")
        return to_customer(row)

    @rpc(Customer, _returns=Integer)
    def UpsertCustomer(ctx, customer):
        if customer is None or not customer.code or not customer.name:
            raise Fault(faultcode="Client.Invalid", faultstring="a customer needs code and name")
        if customer.email is not None and "@" not in customer.email:
            raise Fault(
                faultcode="Client.Invalid", faultstring=f"email {customer.email!r} has no @"
            )
        address = customer.address or Address()
        if address.country is not None and len(address.country) != 2:
            raise Fault(
                faultcode="Client.Invalid",
                faultstring=f"country {address.country!r} is not an ISO 3166 alpha-2 code",
            )
        db = connect(ctx.app.db_path)
        try:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM locks WHERE code = ?", (customer.code,)).fetchone():
                raise Fault(
                    faultcode="Server.Locked",
                    faultstring=f"customer {customer.code} is being edited by another user",
                )
            values = (
                customer.name,
                customer.email,
                None if customer.credit_limit is None else str(customer.credit_limit),
                int(bool(customer.locked)),
                address.street,
                address.postal_code,
                address.city,
                address.country,
                next_stamp(db),
            )
            db.execute(
                "INSERT INTO customers (code, name, email, credit_limit, locked, street, "
                "postal_code, city, country, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (code) DO UPDATE SET name = excluded.name, email = excluded.email, "
                "credit_limit = excluded.credit_limit, locked = excluded.locked, "
                "street = excluded.street, postal_code = excluded.postal_code, "
                "city = excluded.city, country = excluded.country, "
                "modified_at = excluded.modified_at",
                (customer.code, *values),
            )
            found = db.execute("SELECT id FROM customers WHERE code = ?", (customer.code,))
            new_id = int(found.fetchone()[0])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()
        return new_id

    @rpc(Integer, _returns=Boolean)
    def DeleteCustomer(ctx, id):
        db = connect(ctx.app.db_path)
        deleted = db.execute("DELETE FROM customers WHERE id = ?", (id,)).rowcount
        db.close()
        if not deleted:
            raise Fault(faultcode="Client.NotFound", faultstring=f"no customer with id {id}")
        return True

    @rpc(Unicode, Boolean, _returns=Boolean)
    def SetLock(ctx, code, locked):
        db = connect(ctx.app.db_path)
        if locked:
            db.execute("INSERT OR IGNORE INTO locks VALUES (?)", (code,))
        else:
            db.execute("DELETE FROM locks WHERE code = ?", (code,))
        db.close()
        return bool(locked)


def plain(status: str, body: bytes, content_type: str, start: StartResponse) -> list[bytes]:
    start(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def basic_ok(environ: Environ, user: str, password: str) -> bool:
    header = environ.get("HTTP_AUTHORIZATION", "")
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
    return header == f"Basic {expected}"


def wsse_ok(body: bytes, user: str, password: str) -> bool:
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return False
    token = root.find(f".//{{{WSSE}}}UsernameToken")
    if token is None:
        return False
    return (
        token.findtext(f"{{{WSSE}}}Username") == user
        and token.findtext(f"{{{WSSE}}}Password") == password
    )


def guarded(soap: Wsgi, user: str, password: str) -> Wsgi:
    """Basic auth on everything (or a UsernameToken on a SOAP POST) and the broken paths."""

    def app(environ: Environ, start: StartResponse) -> Iterable[bytes]:
        body = b""
        if environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
        if not (basic_ok(environ, user, password) or (body and wsse_ok(body, user, password))):
            start(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="erp"')],
            )
            return [b"authentication required"]
        path = environ.get("PATH_INFO", "/")
        if path == "/html500":
            page = b"<html><head><title>500</title></head><body><h1>Internal Server Error</h1>"
            page += b"<p>The application crashed.</p></body></html>"
            return plain("500 Internal Server Error", page, "text/html", start)
        if path == "/notxml":
            return plain("200 OK", b"OK, thanks", "text/plain", start)
        if path == "/malformed.wsdl":
            return plain("200 OK", b'<?xml version="1.0"?><definitions><types>', "text/xml", start)
        if path != "/":
            return plain("404 Not Found", b"not found", "text/plain", start)
        return soap(environ, start)

    return app


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read stdout for the URL; request logs would only be noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    db = connect(args.db)
    db.executescript(SCHEMA)
    db.close()
    application = Application(
        [CustomerService],
        tns=TNS,
        name="ErpService",
        in_protocol=Soap11(validator="lxml"),
        out_protocol=Soap11(),
    )
    application.db_path = args.db
    wsgi = guarded(WsgiApplication(application), args.user, args.password)
    server: WSGIServer = make_server("127.0.0.1", args.port, wsgi, handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"http://127.0.0.1:{server.server_port}/", flush=True)
    server.serve_forever()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
