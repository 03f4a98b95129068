"""The rpc transport's master-data pieces without a server: real-time operations (``call``,
``validate_po``, ``sale_price``), many2many memberships, ``method: update`` and the write
context, the read's ``memberships`` and ``for_each`` options — against a scripted session that
records every call. The real Tryton: tests/integration/test_tryton_masterdata.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from erpbridge.errors import DataError, FatalError
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.rpc.call import RpcOperationOptions, call_rpc, plain
from erpbridge.transports.rpc.session import Account, Domain, Order, RpcSession
from erpbridge.transports.rpc.transport import RpcStreamOptions, _flags
from erpbridge.transports.rpc.tryton import TrytonSession
from erpbridge.transports.rpc.values import (
    Prepared,
    RecordRefused,
    RecordWriter,
    RpcTargetOptions,
)


class Scripted(RpcSession):
    """A session answering ``search_read`` from ``answers`` (by model) and recording calls."""

    name: ClassVar[str] = "Tryton"
    replace_needs_ids: ClassVar[bool] = True

    def __init__(self, answers: dict[str, list[list[dict[str, Any]]]] | None = None) -> None:
        self.channel = "erp"
        self.answers = answers or {}
        self.calls: list[tuple[str, str, Any, Any]] = []

    def search_read(
        self,
        model: str,
        domain: Domain,
        fields: Sequence[str] | None,
        limit: int | None,
        order: Order,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self.calls.append((model, "search_read", domain, dict(context or {})))
        queue = self.answers.get(model) or [[]]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def execute(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: Mapping[str, Any] | None = None,
        fields: Sequence[str] = (),
    ) -> Any:
        self.calls.append((model, method, args, dict(kwargs or {})))
        return [{"name": "Anna", "price": Decimal("9.50"), "at": datetime(2024, 5, 1, 6, 0)}]

    def create(
        self, model: str, rows: list[dict[str, Any]], context: Mapping[str, Any] | None = None
    ) -> list[int]:
        self.calls.append((model, "create", rows, dict(context or {})))
        return list(range(100, 100 + len(rows)))

    def write(
        self,
        model: str,
        changes: list[tuple[int, dict[str, Any]]],
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.calls.append((model, "write", changes, dict(context or {})))

    many2many = TrytonSession.many2many
    one2many = TrytonSession.one2many
    conjoin = TrytonSession.conjoin
    disjoin = TrytonSession.disjoin

    def login(self) -> None:
        """Nothing to log in to."""

    def version(self) -> str:
        return "8.2"

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[Any]:
        return []

    def since(self, field_name: str, value: Any, fallback: str | None) -> Domain:
        return []

    def filled(self, field_name: str, empty: bool = False) -> Domain:
        return []

    def close(self) -> None:
        """Nothing to close."""


def _op(**options: Any) -> RpcOperationOptions:
    return RpcOperationOptions.model_validate(options)


def test_call_renders_typed_arguments_and_answers_plain_json() -> None:
    session = Scripted()
    operation = _op(
        model="party.party",
        method="search_read",
        args=[[["code", "=", "{code}"]], 0, "{limit}", None, ["name"]],
        context={"company": "{company}"},
        result_path="0",
    )
    answer = call_rpc(session, "tryton", operation, {"code": "C-1", "limit": 5, "company": 1})
    assert answer == {"name": "Anna", "price": "9.50", "at": "2024-05-01T06:00:00"}
    model, method, args, kwargs = session.calls[0]
    assert (model, method) == ("party.party", "search_read")
    assert args == [[["code", "=", "C-1"]], 0, 5, None, ["name"]]
    assert kwargs == {"context": {"company": 1}}


def test_a_missing_parameter_is_a_data_error() -> None:
    with pytest.raises(DataError, match="code: missing parameter"):
        call_rpc(Scripted(), "tryton", _op(model="m", method="x", args=["{code}"]), {})
    with pytest.raises(DataError, match="po_number: missing parameter"):
        call_rpc(Scripted(), "tryton", _op(kind="validate_po"), {"customer": "C-1"})


def test_call_needs_model_and_method() -> None:
    with pytest.raises(ValidationError, match="needs `model` and `method`"):
        _op(kind="call", model="party.party")
    with pytest.raises(ValidationError):
        _op(kind="unknown")


def test_tryton_kinds_are_refused_for_odoo() -> None:
    with pytest.raises(FatalError, match="kind validate_po is made for Tryton"):
        call_rpc(Scripted(), "odoo", _op(kind="validate_po"), {"customer": "C", "po_number": "1"})


def test_validate_po_answers() -> None:
    party = {"id": 7, "categories": [{"id": 1, "name": "Locked"}]}
    sales = [{"id": 3, "number": "SO-3", "state": "confirmed"}]
    nobody = call_rpc(
        Scripted({"party.party": [[]]}),
        "tryton",
        _op(kind="validate_po"),
        {"customer": "C-9", "po_number": "PO-1"},
    )
    assert (nobody["valid"], nobody["customer_exists"]) == (False, False)
    assert nobody["reason"] == "no customer with code 'C-9'"
    session = Scripted({"party.party": [[party]], "sale.sale": [sales]})
    locked = call_rpc(
        session, "tryton", _op(kind="validate_po"), {"customer": "C-1", "po_number": " PO-1 "}
    )
    assert (locked["valid"], locked["locked"], locked["po_used"]) == (False, True, True)
    assert locked["orders"] == ["SO-3"] and locked["reason"] == "customer 'C-1' is locked"
    assert session.calls[1][2] == [
        ["party", "=", 7], ["reference", "=", "PO-1"], ["state", "not in", ["cancelled"]],
    ]  # fmt: skip
    free = call_rpc(
        Scripted({"party.party": [[{"id": 8, "categories": []}]], "sale.sale": [[]]}),
        "tryton",
        _op(kind="validate_po", locked_category=None),
        {"customer": "C-2", "po_number": "PO-1"},
    )
    assert (free["valid"], free["reason"]) == (True, None)


def test_sale_price_asks_tryton_with_the_customers_price_list() -> None:
    session = Scripted({
        "party.party": [[{"id": 7, "sale_price_list": {"id": 4, "name": "Gold"}}]],
        "product.product": [[{"id": 2, "sale_price_uom": Decimal("12.0000"),
                              "list_price_used": Decimal("15"), "default_uom": {"symbol": "u"}}]],
    })  # fmt: skip
    answer = call_rpc(
        session, "tryton", _op(kind="sale_price"), {"customer": "C-1", "sku": "P", "quantity": "10"}
    )
    assert answer == {
        "sku": "P", "customer": "C-1", "quantity": 10.0, "unit_price": "12.0000",
        "list_price": "15", "price_list": "Gold", "unit": "u",
    }  # fmt: skip
    assert session.calls[-1][3] == {"quantity": 10.0, "customer": 7, "price_list": 4}
    with pytest.raises(DataError, match="customer: no customer with code 'X'"):
        call_rpc(Scripted(), "tryton", _op(kind="sale_price"), {"customer": "X", "sku": "P"})
    with pytest.raises(DataError, match="sku: no product with code 'P'"):
        call_rpc(Scripted(), "tryton", _op(kind="sale_price"), {"sku": "P"})
    with pytest.raises(DataError, match="quantity: must not be negative"):
        call_rpc(Scripted(), "tryton", _op(kind="sale_price"), {"sku": "P", "quantity": -1})


def test_plain_values() -> None:
    assert plain({"d": date(2024, 1, 2), "b": b"\x00", "n": [Decimal("1.50")]}) == {
        "d": "2024-01-02", "b": "AA==", "n": ["1.50"],
    }  # fmt: skip


def _outgoing(key: str, **data: Any) -> Prepared:
    record = OutgoingRecord(1, "customer", key, 2, f"f:{key}:2", {"code": key, **data})
    return Prepared.of(record, "id")


CATEGORIES = {"categories": {"model": "party.category", "field": "name"}}


def test_memberships_link_and_unlink_on_write_and_only_link_on_create() -> None:
    session = Scripted({
        "party.category": [[{"id": 1, "name": "Locked"}, {"id": 2, "name": "News"}]],
        "party.party": [[{"id": 9, "code": "C-1"}]],
    })  # fmt: skip
    target = RpcTargetOptions.model_validate(
        {"model": "party.party", "match_field": "code", "many2many": CATEGORIES,
         "context": {"active_test": False}}
    )  # fmt: skip
    ids = RecordWriter(session).write(
        target,
        [
            _outgoing("C-1", categories={"Locked": True, "News": False}),
            _outgoing("C-2", name="New", categories={"Locked": False, "News": "yes"}),
            _outgoing("C-3", name="Other", categories={"Locked": None}),
        ],
    )
    assert ids == [9, 100, 101]
    creates = next(c for c in session.calls if c[1] == "create")
    writes = next(c for c in session.calls if c[1] == "write")
    assert creates[2] == [
        {"code": "C-2", "name": "New", "categories": [["add", [2]]]},
        {"code": "C-3", "name": "Other"},
    ]
    assert writes[2] == [(9, {"categories": [["add", [1]], ["remove", [2]]]})]
    assert creates[3] == writes[3] == {"active_test": False}
    search = next(c for c in session.calls if c[0] == "party.party")
    assert search[3] == {"active_test": False}


def test_membership_problems_refuse_the_record() -> None:
    target = RpcTargetOptions.model_validate(
        {"model": "party.party", "match_field": "code", "many2many": CATEGORIES}
    )
    session = Scripted({"party.category": [[]], "party.party": [[{"id": 9, "code": "C-1"}]]})
    with pytest.raises(RecordRefused, match=r"many2many categories: no party\.category with name"):
        RecordWriter(session).write(target, [_outgoing("C-1", categories={"Gold": True})])
    with pytest.raises(RecordRefused, match="must make an object"):
        RecordWriter(session).write(target, [_outgoing("C-1", categories=["Gold"])])


def test_update_never_creates() -> None:
    target = RpcTargetOptions.model_validate(
        {"model": "party.party", "method": "update", "match_field": "code"}
    )
    session = Scripted({"party.party": [[{"id": 9, "code": "C-1"}]]})
    with pytest.raises(RecordRefused) as refused:
        RecordWriter(session).write(target, [_outgoing("C-1"), _outgoing("C-2")])
    assert str(refused.value) == (
        "channel 'erp': writing customer 'C-2' v2 (delivery 1) to party.party: no record with "
        "code = 'C-2' to update"
    )
    assert not [c for c in session.calls if c[1] in ("create", "write")]
    with pytest.raises(ValidationError, match="method update needs `match_field`"):
        RpcTargetOptions.model_validate({"model": "party.party", "method": "update"})


def test_memberships_of_a_read_become_flags() -> None:
    row = {"id": 1, "categories": [{"id": 1, "name": "Locked"}, {"id": 2, "name": ""}], "x": 1}
    assert _flags(row, {"categories": "name", "missing": "name"}) == {
        "id": 1, "categories": {"Locked": True}, "x": 1,
    }  # fmt: skip


def test_for_each_reads_in_full() -> None:
    each = {"model": "stock.location", "as": "warehouse"}
    with pytest.raises(ValidationError, match="cannot be combined with cursor_field"):
        RpcStreamOptions.model_validate(
            {"model": "product.product", "for_each": each, "cursor_field": "write_date"}
        )
    with pytest.raises(ValidationError):
        RpcStreamOptions.model_validate(
            {"model": "product.product", "for_each": {**each, "as": "not a name"}}
        )


def test_the_tryton_session_sends_the_extra_context() -> None:
    sent: list[Any] = []

    class Http:
        def absolute(self, url: str) -> str:
            return "http://erp/" + url

    session = TrytonSession(
        "erp",
        Account("db", "admin", SecretStr("pw")),
        Http(),  # type: ignore[arg-type]
    )
    session._auth, session._context = "Session x", {"company": 1, "language": "en"}

    def post(url: str, method: str, params: list[Any], auth: str | None = None) -> Any:
        sent.append(params[-1])
        raise FatalError("stop")

    session._post = post  # type: ignore[method-assign]
    with pytest.raises(FatalError):
        session.search_read("product.product", [], ["id"], 1, [], {"locations": [5]})
    assert sent == [{"company": 1, "language": "en", "locations": [5]}]
