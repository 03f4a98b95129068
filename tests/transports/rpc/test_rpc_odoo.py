"""The RPC transport's Odoo dialect, over JSON-RPC and XML-RPC, against recorded answers.

Odoo cannot run here. A small local HTTP server stands in for it (:mod:`odooreplay`): it answers
with the request and response shapes of Odoo's documented external API (odoo.com/documentation/
17.0/developer/reference/external_api.html: ``common.version``, ``authenticate``,
``execute_kw`` with ``search_read``, ``create``, ``write``, ``fields_get``; the ``res.partner``
records of the documentation's ``search_read`` example; JSON-RPC errors as Odoo's
``JsonRPCDispatcher`` shapes them, XML-RPC faults with Odoo's fault codes). To answer paged and
incremental reads it filters those records with a few domain operators and sorts them, nothing
more.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from erpbridge.errors import FatalError, RetriableError
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.rpc.transport import (
    RpcChannelOptions,
    RpcStreamOptions,
    RpcTargetOptions,
    RpcTransport,
)
from transports.rpc.odooreplay import DATABASE, FIELDS, PASSWORD, USER, FakeOdoo, serve_odoo


@pytest.fixture
def odoo() -> Iterator[tuple[FakeOdoo, str]]:
    fake = FakeOdoo()
    with serve_odoo(fake) as url:
        yield fake, url


def transport(url: str, protocol: str, password: str = PASSWORD) -> RpcTransport:
    options = RpcChannelOptions(
        base_url=url,
        dialect="odoo",
        protocol=protocol,  # type: ignore[arg-type]
        database=DATABASE,
        username=USER,
        credentials={"password": SecretStr(password)},
    )
    return RpcTransport("odoo", options, Path("."))


def model_calls(fake: FakeOdoo, method: str) -> list[list[Any]]:
    """``[args, kwargs]`` of each ``execute_kw`` of ``method``."""
    return [args[5:] for service, m, args in fake.calls if m == "execute_kw" and args[4] == method]


PROTOCOLS = ["jsonrpc", "xmlrpc"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_login_then_search_read_in_pages_by_id(protocol: str, odoo: tuple[FakeOdoo, str]) -> None:
    fake, url = odoo
    rpc = transport(url, protocol)
    stream = RpcStreamOptions(
        model="res.partner",
        domain=[["is_company", "=", True]],
        fields=["name", "country_id", "comment"],
        page_size=2,
    )

    batches = list(rpc.read(stream, None, 100, frozenset({"name"})))
    rpc.close()

    assert [[r.data["id"] for r in b.records] for b in batches] == [[7, 12], [14, 17], [18]]
    first = batches[0].records[0]
    assert first.position == "res.partner#id=7"
    assert first.data == {
        "id": 7,
        "name": "Agrolait",
        "country_id": [21, "Belgium"],
        "comment": None,
    }
    assert [m for _, m, _ in fake.calls].count("authenticate") == 1
    pages = model_calls(fake, "search_read")
    assert pages[0] == [
        [[["is_company", "=", True], ["id", ">", 0]]],
        {"order": "id asc", "limit": 2, "fields": ["id", "name", "country_id", "comment"]},
    ]
    assert [p[0][0][1] for p in pages] == [["id", ">", 0], ["id", ">", 12], ["id", ">", 17]]


def test_incremental_reads_by_write_date(odoo: tuple[FakeOdoo, str]) -> None:
    fake, url = odoo
    rpc = transport(url, "jsonrpc")
    stream = RpcStreamOptions(model="res.partner", fields=["name"], cursor_field="write_date")

    first = list(rpc.read(stream, None, 10, frozenset()))
    assert sum(len(b.records) for b in first) == 5
    cursor = first[-1].cursor
    assert cursor["since"] == {"text": "2024-05-03 10:00:00"}  # the newest write_date
    fake.partners[0].update(name="Agrolait SA", write_date="2024-05-04 08:00:00")

    second = list(rpc.read(stream, cursor, 10, frozenset()))
    rpc.close()

    changed = [r.data["name"] for b in second for r in b.records]
    assert changed == ["Agrolait SA", "Bank Wealthy and sons"]  # and the boundary, id 12
    newest = model_calls(fake, "search_read")[-2]  # the pass asks for its upper bound first
    assert newest[0] == [[["write_date", ">=", "2024-05-03 10:00:00"], ["write_date", "!=", False]]]
    assert newest[1]["order"] == "write_date desc"
    assert second[-1].cursor["since"] == {"text": "2024-05-04 08:00:00"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_changed_child_contact_reads_its_company_again(
    protocol: str, odoo: tuple[FakeOdoo, str]
) -> None:
    fake, url = odoo
    contact = {"id": 30, "name": "Agrolait, Michel", "is_company": False}
    fake.partners.append({**contact, "parent_id": [7, "Agrolait"], "write_date": "2024-05-01"})
    fake.partners[0]["child_ids"] = [30]
    rpc = transport(url, protocol)
    stream = RpcStreamOptions(
        model="res.partner",
        domain=[["is_company", "=", True]],
        fields=["name"],
        cursor_field="write_date",
        related=[  # a company's contacts are partners too
            {"model": "res.partner", "via": ["child_ids"], "domain": [["parent_id", "!=", False]]}
        ],  # type: ignore[list-item]
    )
    first = list(rpc.read(stream, None, 10, frozenset()))
    assert sum(len(b.records) for b in first) == 5
    fake.partners[-1]["write_date"] = "2024-05-06 10:00:00"  # the contact changed, not Agrolait

    second = list(rpc.read(stream, first[-1].cursor, 10, frozenset()))
    rpc.close()

    assert [r.data["name"] for b in second for r in b.records] == [
        "Agrolait",  # read again for its contact
        "Bank Wealthy and sons",  # the boundary, as ever
    ]
    assert model_calls(fake, "search_read")[-1][0][0] == [
        ["is_company", "=", True],
        "|", ["write_date", ">=", "2024-05-03 10:00:00"], ["child_ids", "in", [30]],
        ["id", ">", 0],
    ]  # fmt: skip
    # The next pass starts after the contact's change: nothing is read again for it.
    assert second[-1].cursor["since"] == {"text": "2024-05-06 10:00:00"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_upsert_creates_then_writes(protocol: str, odoo: tuple[FakeOdoo, str]) -> None:
    fake, url = odoo
    rpc = transport(url, protocol)
    target = RpcTargetOptions(
        model="res.partner", method="upsert", match_field="ref", one2many={"child_ids": "replace"}
    )

    def record(version: int, name: str) -> OutgoingRecord:
        data = {
            "ref": "K-1",
            "name": name,
            "comment": None,
            "credit_limit": Decimal("1500.50"),
            "child_ids": [{"name": "Anna", "email": "anna@example.com"}],
        }
        return OutgoingRecord(version, "customer", "K-1", version, f"k{version}", data)

    created = rpc.write(target, [record(1, "New Partner")])
    written = rpc.write(target, [record(2, "Newer partner")])
    rpc.close()

    assert created == written == ["78"]
    (create,) = model_calls(fake, "create")
    assert create[0] == [
        [
            {
                "ref": "K-1",
                "name": "New Partner",
                "comment": False,  # Odoo's empty value
                "credit_limit": 1500.5,
                "child_ids": [[0, 0, {"name": "Anna", "email": "anna@example.com"}]],
            }
        ]
    ]
    (write,) = model_calls(fake, "write")
    assert write[0] == [
        [78],
        {
            "name": "Newer partner",
            "comment": False,
            "credit_limit": 1500.5,
            "child_ids": [[5, 0, 0], [0, 0, {"name": "Anna", "email": "anna@example.com"}]],
        },
    ]
    assert fake.partners[-1]["name"] == "Newer partner"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("name", "message", "category", "fatal"),
    [
        ("odoo.exceptions.ValidationError", "The VAT number [XX123] is not valid.", "error", True),
        (
            "odoo.exceptions.AccessError",
            "You are not allowed to create Contact.",
            "forbidden",
            True,
        ),
        ("psycopg2.errors.SerializationFailure", "could not serialize access", "error", False),
    ],
)
def test_a_fault_on_write_names_the_record_and_the_cause(
    protocol: str,
    name: str,
    message: str,
    category: str,
    fatal: bool,
    odoo: tuple[FakeOdoo, str],
) -> None:
    fake, url = odoo
    rpc = transport(url, protocol)
    target = RpcTargetOptions(model="res.partner", method="create")
    fake.fail_next = (name, message)
    record = OutgoingRecord(5, "customer", "K-7", 3, "k", {"name": "Broken"})

    with pytest.raises(FatalError if fatal else RetriableError) as caught:
        rpc.write(target, [record])
    rpc.close()

    text = str(caught.value)
    assert text.startswith("channel 'odoo': ")
    assert message in text
    assert getattr(caught.value, "category", None) == category
    if fatal:
        assert "customer 'K-7' v3 (delivery 5)" in text
        assert "res.partner" in text
    assert PASSWORD not in text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_password_and_unknown_model(protocol: str, odoo: tuple[FakeOdoo, str]) -> None:
    _, url = odoo
    wrong = transport(url, protocol, password="not-the-key")
    health = wrong.health()
    wrong.close()
    assert (health.ok, health.category) == (False, "auth")
    assert f"login refused for user {USER!r} on database {DATABASE!r}" in health.detail
    assert "not-the-key" not in health.detail

    rpc = transport(url, protocol)
    assert rpc.health().ok
    with pytest.raises(FatalError) as caught:
        list(rpc.read(RpcStreamOptions(model="res.partnerx"), None, 10, frozenset()))
    rpc.close()
    assert getattr(caught.value, "category", None) == "schema"
    assert "Object res.partnerx doesn't exist" in str(caught.value)


def test_an_xml_answer_with_a_doctype_is_refused(odoo: tuple[FakeOdoo, str]) -> None:
    fake, url = odoo
    rpc = transport(url, "xmlrpc")
    fake.raw_next = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;">]><methodResponse><params><param><value><string>&lol2;'
        b"</string></value></param></params></methodResponse>"
    )

    health = rpc.health()
    rpc.close()

    assert (health.ok, health.category) == (False, "protocol")
    assert "DOCTYPE" in health.detail


def test_a_pass_resumes_after_the_last_committed_page(odoo: tuple[FakeOdoo, str]) -> None:
    fake, url = odoo
    stream = RpcStreamOptions(model="res.partner", fields=["name"], cursor_field="write_date")
    rpc = transport(url, "jsonrpc")
    pages = rpc.read(stream, None, 2, frozenset())
    first = next(pages)
    pages.close()  # the run stops here (a crash): only the first page was committed
    rpc.close()
    assert first.cursor == {
        "field": "write_date",
        "since": None,
        "until": {"text": "2024-05-03 10:00:00"},
        "after_id": 12,
    }
    fake.partners.append({"id": 30, "name": "Newcomer", "write_date": "2024-05-09 09:00:00"})

    rpc = transport(url, "jsonrpc")
    rest = list(rpc.read(stream, first.cursor, 2, frozenset()))
    rpc.close()

    # The same pass goes on after id 12. The newcomer, newer than the pass's end (until), comes
    # now and again with the next pass, where the hub finds it unchanged.
    assert [[r.data["id"] for r in b.records] for b in rest] == [[14, 17], [18, 30], []]
    assert rest[-1].cursor == {
        "field": "write_date",
        "since": {"text": "2024-05-03 10:00:00"},
        "until": None,
        "after_id": None,
    }


def test_a_dotted_field_reads_its_relation_and_a_plain_field_cannot_be_followed(
    odoo: tuple[FakeOdoo, str],
) -> None:
    fake, url = odoo
    fake.fields = {
        "res.partner": {**FIELDS, "parent_id": {"type": "many2one", "relation": "res.partner"}}
    }
    fake.partners.append({"id": 30, "name": "Michel", "parent_id": [7, "Agrolait"],
                          "is_company": False, "write_date": "2024-05-01 10:00:00"})  # fmt: skip
    rpc = transport(url, "jsonrpc")
    stream = RpcStreamOptions(
        model="res.partner", domain=[["is_company", "=", False]], fields=["parent_id.name"]
    )
    (batch,) = list(rpc.read(stream, None, 10, frozenset()))
    assert batch.records[0].data == {"id": 30, "parent_id": {"id": 7, "name": "Agrolait"}}
    assert model_calls(fake, "read") == [[[[7]], {"fields": ["name"]}]]

    broken = RpcStreamOptions(model="res.partner", fields=["name.ref"])
    with pytest.raises(FatalError) as caught:
        list(rpc.read(broken, None, 10, frozenset()))
    rpc.close()
    assert "name.ref: name is not a relational field of res.partner" in str(caught.value)
    assert getattr(caught.value, "category", None) == "schema"
