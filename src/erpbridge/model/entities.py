"""Canonical entities: the business types the hub keeps, built-in and declared in configuration.

An entity is data, not code: a name, a business key (one or more fields) and typed fields. The
built-in catalogue covers the seeds' business data; a configuration adds more (``vehicle``,
``warranty_claim``) and they are stored, mapped and versioned exactly like these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.errors import DataError, DataErrors
from erpbridge.model.fields import FieldPlan, FieldSpec, compile_object, field_plan

__all__ = ["BUILTIN_ENTITIES", "EntityCatalog", "EntitySpec"]

_KEY_SEPARATOR = "|"
_NO_KEY = "business key field is missing"


class EntitySpec(BaseModel):
    """One canonical entity: its business key and its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: tuple[str, ...] = Field(min_length=1, description="Field(s) forming the business key.")
    fields: dict[str, FieldSpec]
    description: str = ""
    search: tuple[str, ...] = Field(
        default=(),
        description="Fields the search help looks in (dot paths into objects and lists, e.g. "
        "`addresses.city`); empty: the entity is not searchable.",
    )

    @model_validator(mode="after")
    def _key_fields_exist(self) -> EntitySpec:
        for name in self.key:
            if name not in self.fields:
                raise ValueError(f"key field {name!r} is not among the fields")
            if self.fields[name].type in ("object", "list", "json"):
                raise ValueError(f"key field {name!r} must be a scalar")
        for path in self.search:
            _check_search_path(self.fields, path)
        return self

    @cached_property
    def card_number_guarded(self) -> frozenset[str]:
        """Fields where a card number always rejects the record: the key and guarded fields."""
        guarded = (name for name, spec in self.fields.items() if spec.no_card_numbers)
        return frozenset(self.key) | frozenset(guarded)

    @cached_property
    def _validator(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        return compile_object(self.fields)

    @cached_property
    def field_plan(self) -> list[FieldPlan]:
        """The top-level fields compiled (``model.fields.field_plan``): what a compiled mapping
        fuses its rules with, to map and validate a record in one pass."""
        return field_plan(self.fields)

    def validate_payload(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Coerce mapped data into the canonical payload; :class:`DataError` on a bad field."""
        try:
            payload = self._validator(data)
        except DataError as exc:
            # Name a missing key beside the other problems (unless a key field is among them).
            failed = {path for path, _ in exc.problems}
            missing = [
                (n, _NO_KEY)
                for n in self.key
                if data.get(n) is None and self.fields[n].default is None and n not in failed
            ]
            if not missing:
                raise
            raise DataErrors.of([*exc.problems, *missing]) from None
        for name in self.key:
            # An empty string is a legitimate key part (a list price has no customer).
            if payload.get(name) is None:
                raise DataError(name, _NO_KEY)
        return payload

    def key_of(self, payload: Mapping[str, Any]) -> str:
        """The record key: the key field's text, or the key fields joined by ``|``."""
        if len(self.key) == 1:
            return str(payload[self.key[0]])
        # Escape the escape character too, or ("a\\", "b|c") and ("a|b\\", "c") would collide.
        parts = (
            str(payload.get(name, "")).replace("\\", "\\\\").replace(_KEY_SEPARATOR, "\\|")
            for name in self.key
        )
        return _KEY_SEPARATOR.join(parts)


def _check_search_path(fields: Mapping[str, FieldSpec], path: str) -> None:
    """``path`` must lead through object/list fields to a scalar (or a list of scalars)."""
    level: Mapping[str, FieldSpec] | None = fields
    spec: FieldSpec | None = None
    for part in path.split("."):
        if level is None or part not in level:
            raise ValueError(f"search field {path!r}: no field {part!r}")
        spec = level[part]
        level = spec.fields  # None below a scalar, so a further part fails above
    if spec is None or spec.type in ("object", "json") or spec.fields is not None:
        raise ValueError(f"search field {path!r} must be a scalar field")


def _f(type_: str = "string", **kwargs: Any) -> FieldSpec:
    return FieldSpec.model_validate({"type": type_, **kwargs})


_ADDRESS = {
    "type": _f(choices=("billing", "shipping", "other"), default="other"),
    "name": _f(),
    "street": _f(),
    "street2": _f(),
    "postal_code": _f(),
    "city": _f(),
    "region": _f(),
    "country": _f(pattern=r"[A-Z]{2}", description="ISO 3166-1 alpha-2"),
}
_LINE = {
    "line_no": _f("integer"),
    "sku": _f(),
    "description": _f(),
    "quantity": _f("decimal"),
    "unit": _f(),
    "unit_price": _f("decimal"),
    "amount": _f("decimal"),
}

BUILTIN_ENTITIES: dict[str, EntitySpec] = {
    "customer": EntitySpec(
        key=("code",),
        description="A business customer with addresses, contacts, lock status and e-mail "
        "preferences.",
        fields={
            "code": _f(required=True),
            "name": _f(required=True),
            "vat_id": _f(),
            "email": _f(),
            "phone": _f(),
            "currency": _f(pattern=r"[A-Z]{3}"),
            "payment_terms": _f(),
            "credit_limit": _f("decimal"),
            "locked": _f("boolean", default=False),
            "lock_reason": _f(),
            "email_preferences": _f(
                "object",
                fields={
                    "newsletter": _f("boolean"),
                    "order_updates": _f("boolean"),
                    "invoices": _f("boolean"),
                },
            ),
            "addresses": _f("list", fields=_ADDRESS),
            "contacts": _f(
                "list",
                fields={"name": _f(), "email": _f(), "phone": _f(), "role": _f()},
            ),
            "updated_at": _f("datetime"),
        },
        search=("code", "name", "vat_id", "email", "addresses.city", "addresses.postal_code"),
    ),
    "product": EntitySpec(
        key=("sku",),
        description="A sellable or producible item.",
        fields={
            "sku": _f(required=True),
            "name": _f(required=True),
            "description": _f(),
            "category": _f(),
            "unit": _f(default="pcs"),
            "ean": _f(pattern=r"\d{8}|\d{12,14}"),
            "weight": _f("decimal", minimum=0),
            "weight_unit": _f(default="kg"),
            "active": _f("boolean", default=True),
            "updated_at": _f("datetime"),
        },
        search=("sku", "name", "ean", "description"),
    ),
    "price": EntitySpec(
        key=("price_list", "sku", "customer_code", "currency", "min_quantity"),
        description="A list price (no customer) or a customer-specific price, per quantity tier.",
        fields={
            "price_list": _f(default="list"),
            "sku": _f(required=True),
            "customer_code": _f(default="", description="empty for list prices"),
            "currency": _f(required=True, pattern=r"[A-Z]{3}"),
            "amount": _f("decimal", required=True, minimum=0),
            "min_quantity": _f("decimal", default="1", minimum=0),
            "valid_from": _f("date"),
            "valid_to": _f("date"),
        },
    ),
    "inventory": EntitySpec(
        key=("sku", "warehouse"),
        description="Stock of one product in one warehouse, with allocations per customer.",
        fields={
            "sku": _f(required=True),
            "warehouse": _f(required=True),
            "quantity": _f("decimal", required=True),
            "reserved": _f("decimal"),
            "available": _f("decimal"),
            "unit": _f(default="pcs"),
            "allocations": _f(
                "list", fields={"customer_code": _f(required=True), "quantity": _f("decimal")}
            ),
            "updated_at": _f("datetime"),
        },
    ),
    "allocation": EntitySpec(
        key=("customer_code", "sku", "warehouse"),
        description="Stock of one product in one warehouse set aside for one customer.",
        fields={
            "customer_code": _f(required=True),
            "sku": _f(required=True),
            "warehouse": _f(required=True),
            "quantity": _f("decimal", required=True, minimum=0),
            "unit": _f(default="pcs"),
            "valid_until": _f("date"),
            "updated_at": _f("datetime"),
        },
    ),
    "order": EntitySpec(
        key=("number",),
        description="A sales order with its lines.",
        fields={
            "number": _f(required=True),
            "customer_code": _f(required=True),
            "po_number": _f(),
            "status": _f(default="new"),
            "shipment_status": _f(description="the ERP's shipment state, e.g. waiting, sent"),
            "invoice_status": _f(description="the ERP's invoice state, e.g. pending, paid"),
            "order_date": _f("date"),
            "currency": _f(pattern=r"[A-Z]{3}"),
            "total": _f("decimal"),
            "shipping_address": _f("object", fields=_ADDRESS),
            "billing_address": _f("object", fields=_ADDRESS),
            "lines": _f("list", fields=_LINE),
            "updated_at": _f("datetime"),
        },
    ),
    "invoice": EntitySpec(
        key=("number",),
        description="An invoice, usually for one order.",
        fields={
            "number": _f(required=True),
            "order_number": _f(),
            "customer_code": _f(required=True),
            "status": _f(default="open"),
            "invoice_date": _f("date"),
            "due_date": _f("date"),
            "currency": _f(pattern=r"[A-Z]{3}"),
            "net": _f("decimal"),
            "tax": _f("decimal"),
            "total": _f("decimal"),
            "lines": _f("list", fields=_LINE),
        },
    ),
    "rma": EntitySpec(
        key=("number",),
        description="A return merchandise authorisation.",
        fields={
            "number": _f(required=True),
            "order_number": _f(),
            "customer_code": _f(required=True),
            "status": _f(default="requested"),
            "reason": _f(),
            "created_at": _f("datetime"),
            "lines": _f("list", fields={**_LINE, "reason": _f()}),
        },
    ),
    "payment_token": EntitySpec(
        key=("token",),
        description="A stored payment card as a token; a raw card number is always rejected.",
        fields={
            "token": _f(required=True, no_card_numbers=True),
            "customer_code": _f(required=True),
            "brand": _f(),
            "last4": _f(pattern=r"\d{4}"),
            "exp_month": _f("integer", minimum=1, maximum=12),
            "exp_year": _f("integer", minimum=2000, maximum=2100),
            "holder": _f(no_card_numbers=True),
            "default": _f("boolean", default=False),
            # The hub never deletes a record: a deleted card is a version with active false.
            "active": _f("boolean", default=True, description="false: the card was deleted"),
        },
    ),
    "production_order": EntitySpec(
        key=("order_code",),
        description="A production order (MES order table, or folded from a booking table).",
        fields={
            "order_code": _f(required=True),
            "product_code": _f(),
            "machine_code": _f(),
            "start": _f("datetime"),
            "end": _f("datetime"),
            "quantity": _f("decimal"),
            "status": _f(choices=("planned", "running", "finished", "incomplete")),
            "issues": _f("list", items="string"),
            "bookings": _f("integer"),
        },
    ),
    "booking": EntitySpec(
        key=("order_code", "timestamp", "event"),
        description="One START/END booking event of a production order.",
        fields={
            "order_code": _f(required=True),
            "timestamp": _f("datetime", required=True),
            "event": _f(required=True),
            "product_code": _f(),
            "machine_code": _f(),
        },
    ),
}


class EntityCatalog(Mapping[str, EntitySpec]):
    """The entities a configuration can use: the built-ins plus its own declarations."""

    def __init__(self, declared: Mapping[str, EntitySpec] | None = None) -> None:
        self._entities = {**BUILTIN_ENTITIES, **(declared or {})}

    def __getitem__(self, name: str) -> EntitySpec:
        return self._entities[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entities)

    def __len__(self) -> int:
        return len(self._entities)
