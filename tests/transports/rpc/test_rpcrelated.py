"""The RPC transport's ``find_or_create`` (related records found by their values or created) and
``buttons`` (methods called on the written records), against an in-memory ERP session."""

from __future__ import annotations

from typing import Any

import pytest

from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.rpc.values import (
    Prepared,
    RecordRefused,
    RecordWriter,
    RpcTargetOptions,
)


class FakeSession:
    """Models as lists of rows; ``=`` and ``in`` domains; every call logged."""

    channel = "erp"

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {
            "party.party": [{"id": 7, "code": "C1"}],
            "party.address": [
                {"id": 70, "party": 7, "street": "Main 1", "city": "Berlin", "country": None},
                {"id": 71, "party": 7, "street": "Side 2", "city": "Bonn", "country": None},
            ],
            "sale.sale": [],
        }
        self.calls: list[tuple[Any, ...]] = []

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: Any,
        limit: Any,
        order: Any,
        context: Any = None,
    ) -> list[dict[str, Any]]:
        self.calls.append(("search_read", model, domain))

        def ok(row: dict[str, Any]) -> bool:
            return all(
                row.get(name) in value if op == "in" else row.get(name) == value
                for name, op, value in domain
            )

        rows = [row for row in self.tables[model] if ok(row)]
        return rows[:limit] if limit else rows

    def create(self, model: str, rows: list[dict[str, Any]], context: Any = None) -> list[int]:
        self.calls.append(("create", model, rows))
        table = self.tables[model]
        ids = []
        for row in rows:
            ids.append(100 + len(table))
            table.append({"id": ids[-1], **row})
        return ids

    def write(self, model: str, changes: Any, context: Any = None) -> None:
        self.calls.append(("write", model, changes))

    def execute(self, model: str, method: str, args: list[Any], kwargs: Any = None) -> None:
        self.calls.append(("execute", model, method, args))

    def one2many(self, rows: list[Any], existing: Any) -> list[Any]:
        return [["create", rows]]


def target(**options: Any) -> RpcTargetOptions:
    address = {"model": "party.address", "match": ["street", "city"], "scope": {"party": "party"}}
    return RpcTargetOptions.model_validate(
        {
            "model": "sale.sale",
            "method": "create",
            "lookups": {"party": {"model": "party.party", "field": "code"}},
            "find_or_create": {"invoice_address": {**address, **options}},
            "buttons": ["quote", "confirm"],
        }
    )


def prepared(*addresses: dict[str, Any] | None) -> list[Prepared]:
    return [
        Prepared.of(
            OutgoingRecord(i, "order", f"P-{i}", 1, f"k{i}", {"party": "C1", "invoice_address": a}),
            "id",
        )
        for i, a in enumerate(addresses, 1)
    ]


def test_an_address_with_the_same_values_is_found_among_the_partys_and_not_created() -> None:
    session = FakeSession()
    records = prepared({"street": "Side 2", "city": "Bonn", "postal_code": "53111"})

    RecordWriter(session).write(target(), records)  # type: ignore[arg-type]

    (sale,) = session.tables["sale.sale"]
    assert (sale["party"], sale["invoice_address"]) == (7, 71)
    assert ("search_read", "party.address", [["street", "=", "Side 2"], ["city", "=", "Bonn"],
            ["party", "=", 7]]) in session.calls  # fmt: skip
    assert len(session.tables["party.address"]) == 2


def test_a_new_address_is_created_once_for_the_partys_orders_then_remembered() -> None:
    session = FakeSession()
    writer = RecordWriter(session)  # type: ignore[arg-type]
    new = {"street": "Dock 9", "city": "Kiel", "country": " "}

    writer.write(target(), prepared(new, dict(new)))
    writer.write(target(), prepared(dict(new)))

    creates = [c for c in session.calls if c[:2] == ("create", "party.address")]
    assert creates == [("create", "party.address", [{"street": "Dock 9", "city": "Kiel",
                                                     "party": 7}])]  # fmt: skip
    created = session.tables["party.address"][-1]["id"]
    assert [s["invoice_address"] for s in session.tables["sale.sale"]] == [created] * 3


@pytest.mark.parametrize(
    ("when_empty", "expected"), [("first", 70), ("omit", None)], ids=["first", "omit"]
)
def test_no_address_takes_the_partys_first_or_leaves_the_field_out(
    when_empty: str, expected: int | None
) -> None:
    session = FakeSession()

    RecordWriter(session).write(target(when_empty=when_empty), prepared(None, {"city": ""}))  # type: ignore[arg-type]

    assert [s.get("invoice_address") for s in session.tables["sale.sale"]] == [expected] * 2
    assert all("invoice_address" in s for s in session.tables["sale.sale"]) == (
        expected is not None
    )


def test_a_value_that_is_no_object_refuses_its_record_by_name() -> None:
    session = FakeSession()

    with pytest.raises(RecordRefused) as caught:
        RecordWriter(session).write(target(), prepared({"street": "A"}, "Main 1"))  # type: ignore[arg-type]

    assert str(caught.value) == (
        "channel 'erp': writing order 'P-2' v1 (delivery 2) to sale.sale: find_or_create "
        "invoice_address: expected an object, got 'Main 1'"
    )
    assert session.tables["sale.sale"] == []


def test_buttons_run_in_order_on_the_written_records_each_named_once() -> None:
    session = FakeSession()
    options = target().model_copy(update={"method": "upsert", "match_field": "description"})
    records = prepared(
        {"street": "Main 1", "city": "Berlin"}, {"street": "Main 1", "city": "Berlin"}
    )
    for p in records:
        p.values["description"] = "WEB-1"  # two versions of one order in one batch

    ids = RecordWriter(session).write(options, records)  # type: ignore[arg-type]

    assert ids[0] == ids[1]
    buttons = [c for c in session.calls if c[0] == "execute"]
    assert buttons == [
        ("execute", "sale.sale", "quote", [[ids[0]]]),
        ("execute", "sale.sale", "confirm", [[ids[0]]]),
    ]
    assert session.calls.index(buttons[0]) > max(
        i for i, c in enumerate(session.calls) if c[0] in ("create", "write")
    )


def test_find_or_create_takes_fields_of_the_record_only() -> None:
    with pytest.raises(ValueError, match="must be a field of the record"):
        RpcTargetOptions.model_validate(
            {"model": "sale.sale", "method": "create",
             "find_or_create": {"lines.address": {"model": "party.address"}}}
        )  # fmt: skip
