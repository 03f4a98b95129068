"""Price-list lines Tryton really applies: its first-match rule, asked of Tryton itself.

Tryton prices a product with the *first* line of the price list that matches it (by sequence,
then id): a quantity-0 line placed before a quantity-100 tier for the same product wins at every
quantity, so the tier is never charged. Exporting every line would publish prices the ERP never
charges. Rather than re-implement the rule (line order, categories and their parents, units,
taxes included), the read asks Tryton for its price (``product.product`` ``sale_price_uom``
under the price list and the line's quantity) and keeps a line only when that price is the
line's own: one call per price list and quantity tier of a page, whatever the number of products.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict

from erpbridge.errors import FatalError
from erpbridge.transports.rpc.session import RpcSession

__all__ = ["FirstMatch", "charged"]


class FirstMatch(BaseModel):
    """Where a price-list line row holds what the check needs (dotted paths into the row)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    price_list: str = "price_list"
    """The line's price list (its id, or a read related record with ``id``)."""
    product: str = "product"
    """The line's product (its id, or a read related record with ``id``)."""
    quantity: str = "quantity"
    """The line's quantity: it applies from this quantity up (empty: 0)."""
    price: str = "formula"
    """The line's fixed price (a formula such as ``12.50``)."""


def _at(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value.get("id") if isinstance(value, dict) else value


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def charged(
    session: RpcSession, spec: FirstMatch, rows: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows whose price is what Tryton charges for their product at their quantity."""
    rows = list(rows)
    groups: dict[tuple[int, float], set[int]] = {}
    for row in rows:
        price_list, product = _at(row, spec.price_list), _at(row, spec.product)
        if not isinstance(price_list, int) or not isinstance(product, int):
            raise FatalError(
                f"first_match: a row without {spec.price_list} or {spec.product} id: read them "
                "in `fields`"
            )
        quantity = float(_at(row, spec.quantity) or 0)
        groups.setdefault((price_list, quantity), set()).add(product)
    prices: dict[tuple[int, float, int], Decimal | None] = {}
    for (price_list, quantity), products in groups.items():
        answer = session.search_read(
            "product.product",
            [["id", "in", sorted(products)]],
            ["id", "sale_price_uom"],
            None,
            [("id", "asc")],
            {"price_list": price_list, "quantity": quantity},
        )
        for found in answer:
            prices[(price_list, quantity, int(found["id"]))] = _decimal(found["sale_price_uom"])
    kept = []
    for row in rows:
        key = (
            _at(row, spec.price_list),
            float(_at(row, spec.quantity) or 0),
            _at(row, spec.product),
        )
        own = _decimal(_at(row, spec.price))
        if own is not None and prices.get(key) == own:
            kept.append(row)
    return kept
