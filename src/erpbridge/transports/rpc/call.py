"""Real-time operations over RPC (Tryton, Odoo): a caller's question answered by the ERP within
the caller's request (``POST /api/v1/channels/{channel}/operations/{name}``).

Three kinds, chosen by ``kind``:

- ``call`` — any model method with templated arguments: ``model``, ``method``, ``args`` and
  ``context`` (``{param}`` placeholders; a value that is exactly one placeholder keeps its JSON
  type), ``result_path`` to pick a part of the answer;
- ``validate_po`` (Tryton) — *Validate PO number*: does the customer (``customer``, by
  ``customer_field``) exist, is it not locked (a member of party category ``locked_category``),
  and is this PO reference (``po_number``) not used yet on one of its sales (``sale.sale``
  ``reference``, states in ``ignore_states`` left out);
- ``sale_price`` (Tryton) — the unit price of product ``sku`` for ``quantity`` (default 1) and,
  with ``customer``, that customer's sale price list: Tryton's own computation
  (``product.product.sale_price_uom`` under the context ``price_list``, ``customer``,
  ``quantity``), the list price beside it.

Answers are plain JSON: decimals as text (``"9.50"``), dates ISO 8601.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from erpbridge.errors import DataError, FatalError
from erpbridge.transports.base import OperationOptions
from erpbridge.transports.rpc.session import RpcSession
from erpbridge.transports.templates import lookup, placeholders, render

__all__ = ["RpcOperationOptions", "call_rpc"]


class RpcOperationOptions(OperationOptions):
    """One real-time operation of an rpc channel (``channels.X.operations.NAME``)."""

    kind: Literal["call", "validate_po", "sale_price"] = Field(
        default="call",
        description="`call` (a model method), `validate_po` or `sale_price` (Tryton).",
    )
    model: str | None = Field(
        default=None, description="`call`: the model, e.g. `sale.sale` or `res.partner`."
    )
    method: str | None = Field(default=None, description="`call`: the method, e.g. `search_read`.")
    args: list[Any] = Field(
        default_factory=list, description="`call`: the positional arguments (templates)."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="Merged into the call's context (templates)."
    )
    result_path: str | None = Field(
        default=None, description="`call`: dotted path of the answer inside the result."
    )
    customer_field: str = Field(
        default="code", description="The party field the `customer` parameter is matched with."
    )
    locked_category: str | None = Field(
        default="Locked",
        description="`validate_po`: the party category that marks a locked customer.",
    )
    reference_field: str = Field(
        default="reference", description="`validate_po`: the sale field holding the PO number."
    )
    ignore_states: list[str] = Field(
        default_factory=lambda: ["cancelled"],
        description="`validate_po`: sale states whose PO numbers may be used again.",
    )
    product_field: str = Field(
        default="code", description="`sale_price`: the product field the `sku` is matched with."
    )

    @model_validator(mode="after")
    def _call_is_complete(self) -> Self:
        if self.kind == "call" and not (self.model and self.method):
            raise ValueError("kind call needs `model` and `method`")
        return self


def call_rpc(
    session: RpcSession, dialect: str, operation: RpcOperationOptions, params: Mapping[str, Any]
) -> Any:
    """Answer ``operation`` for ``params`` through ``session``; plain JSON data."""
    if operation.kind == "call":
        return _call(session, operation, params)
    if dialect != "tryton":
        raise FatalError(
            f"channel {session.channel!r}: operation kind {operation.kind} is made for Tryton; "
            "use kind call for this ERP"
        )
    if operation.kind == "validate_po":
        return _validate_po(session, operation, params)
    return _sale_price(session, operation, params)


def _call(session: RpcSession, operation: RpcOperationOptions, params: Mapping[str, Any]) -> Any:
    needed = placeholders(operation.args) | placeholders(operation.context)
    for name in sorted(needed - set(params)):
        raise DataError(name, "missing parameter")
    args = render(operation.args, params)
    context = render(operation.context, params)
    result = session.execute(
        str(operation.model), str(operation.method), args, {"context": context} if context else None
    )
    return plain(lookup(result, operation.result_path))


def _validate_po(
    session: RpcSession, operation: RpcOperationOptions, params: Mapping[str, Any]
) -> dict[str, Any]:
    customer, po_number = _text(params, "customer"), _text(params, "po_number")
    answer: dict[str, Any] = {
        "customer": customer,
        "po_number": po_number,
        "valid": False,
        "customer_exists": False,
        "locked": False,
        "po_used": False,
        "orders": [],
        "reason": None,
    }
    parties = session.search_read(
        "party.party", [[operation.customer_field, "=", customer]], ["id", "categories.name"], 1, []
    )
    if not parties:
        answer["reason"] = f"no customer with {operation.customer_field} {customer!r}"
        return answer
    party = parties[0]
    answer["customer_exists"] = True
    names = {c.get("name") for c in party.get("categories") or [] if isinstance(c, dict)}
    answer["locked"] = operation.locked_category is not None and operation.locked_category in names
    sales = session.search_read(
        "sale.sale",
        [
            ["party", "=", party["id"]],
            [operation.reference_field, "=", po_number],
            ["state", "not in", operation.ignore_states],
        ],
        ["number", "state"],
        20,
        [("id", "asc")],
    )
    answer["orders"] = [s.get("number") or f"draft #{s['id']}" for s in sales]
    answer["po_used"] = bool(sales)
    if answer["locked"]:
        answer["reason"] = f"customer {customer!r} is locked"
    elif sales:
        answer["reason"] = (
            f"PO number {po_number!r} is already used on {', '.join(answer['orders'])}"
        )
    answer["valid"] = answer["reason"] is None
    return answer


def _sale_price(
    session: RpcSession, operation: RpcOperationOptions, params: Mapping[str, Any]
) -> dict[str, Any]:
    sku = _text(params, "sku")
    quantity = _quantity(params.get("quantity", 1))
    context: dict[str, Any] = {"quantity": quantity, **render(operation.context, params)}
    price_list = None
    customer = params.get("customer")
    if customer not in (None, ""):
        customer = str(customer)
        parties = session.search_read(
            "party.party",
            [[operation.customer_field, "=", customer]],
            ["id", "sale_price_list.name"],
            1,
            [],
        )
        if not parties:
            raise DataError("customer", f"no customer with {operation.customer_field} {customer!r}")
        context["customer"] = parties[0]["id"]
        price_list = parties[0].get("sale_price_list")
        if isinstance(price_list, dict):
            context["price_list"] = price_list["id"]
    products = session.search_read(
        "product.product",
        [[operation.product_field, "=", sku]],
        ["id", "sale_price_uom", "list_price_used", "default_uom.symbol"],
        1,
        [],
        context,
    )
    if not products:
        raise DataError("sku", f"no product with {operation.product_field} {sku!r}")
    product = products[0]
    return {
        "sku": sku,
        "customer": customer,
        "quantity": plain(quantity),
        "unit_price": plain(product.get("sale_price_uom")),
        "list_price": plain(product.get("list_price_used")),
        "price_list": price_list.get("name") if isinstance(price_list, dict) else None,
        "unit": (product.get("default_uom") or {}).get("symbol"),
    }


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or str(value).strip() == "":
        raise DataError(name, "missing parameter")
    return str(value).strip()


def _quantity(value: Any) -> float:
    try:
        quantity = float(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        raise DataError("quantity", f"not a number: {value!r}") from None
    if quantity < 0:
        raise DataError("quantity", "must not be negative")
    return quantity


def plain(value: Any) -> Any:
    """``value`` as JSON data: decimals as text, dates and times ISO 8601, bytes base64."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
