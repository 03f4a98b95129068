"""The built-in entities, business keys, and entities declared in configuration."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from erpbridge.errors import DataError
from erpbridge.model import BUILTIN_ENTITIES, EntityCatalog, EntitySpec

CUSTOMER: dict[str, Any] = {
    "code": "C-10001",
    "name": "Acme Maschinenbau GmbH",
    "vat_id": "DE123456789",
    "email": "einkauf@acme.example",
    "phone": "+49 30 1234567",
    "currency": "EUR",
    "payment_terms": "30 days net",
    "credit_limit": "25000.00",
    "locked": "N",
    "lock_reason": None,
    "email_preferences": {"newsletter": "false", "order_updates": True, "invoices": 1},
    "addresses": [
        {
            "type": "billing",
            "name": "Acme",
            "street": "Hauptstr. 1",
            "postal_code": "10115",
            "city": "Berlin",
            "country": "DE",
        },
        {"type": "shipping", "street": "Werkstr. 9", "city": "Potsdam", "country": "DE"},
    ],
    "contacts": [{"name": "Eva Schmidt", "email": "eva@acme.example", "role": "purchasing"}],
    "updated_at": "2024-03-04T10:15:00+01:00",
}

PAYLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "customer": (CUSTOMER, "C-10001"),
    "product": (
        {
            "sku": "BOLT-M8",
            "name": "Hex bolt M8x40",
            "description": "DIN 933, zinc plated",
            "category": "fasteners",
            "ean": "4006381333931",
            "weight": "0.020",
            "active": "yes",
            "updated_at": "2024-03-04T09:00:00Z",
        },
        "BOLT-M8",
    ),
    "price": (
        {
            "price_list": "retail",
            "sku": "BOLT-M8",
            "currency": "EUR",
            "amount": "0.35",
            "min_quantity": "100",
            "valid_from": "2024-01-01",
            "valid_to": "2024-12-31",
        },
        "retail|BOLT-M8||EUR|100",
    ),
    "inventory": (
        {
            "sku": "BOLT-M8",
            "warehouse": "WH-BER",
            "quantity": "1200",
            "reserved": "200",
            "available": "1000",
            "allocations": [{"customer_code": "C-10001", "quantity": "150"}],
            "updated_at": "2024-03-04T06:00:00Z",
        },
        "BOLT-M8|WH-BER",
    ),
    "allocation": (
        {
            "customer_code": "C-10001",
            "sku": "BOLT-M8",
            "warehouse": "WH-BER",
            "quantity": "150",
            "valid_until": "2024-03-31",
        },
        "C-10001|BOLT-M8|WH-BER",
    ),
    "order": (
        {
            "number": "SO-2024-0042",
            "customer_code": "C-10001",
            "po_number": "PO-77",
            "status": "processing",
            "shipment_status": "waiting",
            "invoice_status": "pending",
            "order_date": "2024-03-04",
            "currency": "EUR",
            "total": "35.00",
            "shipping_address": {"city": "Potsdam", "country": "DE"},
            "lines": [
                {
                    "line_no": 10,
                    "sku": "BOLT-M8",
                    "quantity": "100",
                    "unit": "pcs",
                    "unit_price": "0.35",
                    "amount": "35.00",
                }
            ],
        },
        "SO-2024-0042",
    ),
    "invoice": (
        {
            "number": "INV-9001",
            "order_number": "SO-2024-0042",
            "customer_code": "C-10001",
            "invoice_date": "2024-03-05",
            "due_date": "2024-04-04",
            "currency": "EUR",
            "net": "35.00",
            "tax": "6.65",
            "total": "41.65",
            "lines": [{"line_no": "1", "sku": "BOLT-M8", "quantity": "100", "amount": "35"}],
        },
        "INV-9001",
    ),
    "rma": (
        {
            "number": "RMA-17",
            "order_number": "SO-2024-0042",
            "customer_code": "C-10001",
            "reason": "damaged",
            "created_at": "2024-03-10T08:00:00Z",
            "lines": [{"line_no": 1, "sku": "BOLT-M8", "quantity": "5", "reason": "rusty"}],
        },
        "RMA-17",
    ),
    "payment_token": (
        {
            "token": "tok_1OuVx2LkdIwHu7ix",
            "customer_code": "C-10001",
            "brand": "visa",
            "last4": "4242",
            "exp_month": "12",
            "exp_year": 2027,
            "holder": "Eva Schmidt",
            "default": True,
        },
        "tok_1OuVx2LkdIwHu7ix",
    ),
    "production_order": (
        {
            "order_code": "PA-5001",
            "product_code": "BOLT-M8",
            "machine_code": "M-03",
            "start": "2024-03-04T06:00:00Z",
            "end": "2024-03-04T14:00:00Z",
            "quantity": "5000",
            "status": "finished",
            "issues": [],
            "bookings": 2,
        },
        "PA-5001",
    ),
    "booking": (
        {
            "order_code": "PA-5001",
            "timestamp": "2024-03-04T06:00:00Z",
            "event": "START",
            "machine_code": "M-03",
        },
        "PA-5001|2024-03-04T06:00:00Z|START",
    ),
}


def test_every_builtin_entity_has_a_realistic_payload_here() -> None:
    assert set(PAYLOADS) == set(BUILTIN_ENTITIES)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_builtin_entity_validates_a_realistic_payload(name: str) -> None:
    entity = BUILTIN_ENTITIES[name]
    data, key = PAYLOADS[name]
    payload = entity.validate_payload(data)
    assert entity.key_of(payload) == key
    # The canonical payload is a fixed point: validating it again changes nothing.
    assert entity.validate_payload(payload) == payload


def test_customer_payload_is_canonical() -> None:
    payload = BUILTIN_ENTITIES["customer"].validate_payload(CUSTOMER)
    assert payload["credit_limit"] == "25000"
    assert payload["locked"] is False
    assert payload["email_preferences"] == {
        "newsletter": False,
        "order_updates": True,
        "invoices": True,
    }
    assert payload["addresses"][1] == {
        "type": "shipping",
        "street": "Werkstr. 9",
        "city": "Potsdam",
        "country": "DE",
    }
    assert payload["updated_at"] == "2024-03-04T09:15:00Z"
    assert "lock_reason" not in payload


def test_defaults_are_filled_in() -> None:
    product = BUILTIN_ENTITIES["product"].validate_payload({"sku": "A", "name": "B"})
    assert product == {"sku": "A", "name": "B", "unit": "pcs", "weight_unit": "kg", "active": True}
    order = BUILTIN_ENTITIES["order"].validate_payload(
        {"number": "1", "customer_code": "C", "billing_address": {"city": "Bonn"}}
    )
    assert order["status"] == "new"
    assert order["billing_address"] == {"type": "other", "city": "Bonn"}


class TestKeys:
    def test_price_list_key_has_an_empty_customer(self) -> None:
        price = BUILTIN_ENTITIES["price"]
        payload = price.validate_payload({"sku": "A-1", "currency": "EUR", "amount": "9.90"})
        assert payload["customer_code"] == ""
        assert price.key_of(payload) == "list|A-1||EUR|1"

    def test_customer_price_key(self) -> None:
        price = BUILTIN_ENTITIES["price"]
        payload = price.validate_payload(
            {
                "sku": "A-1",
                "customer_code": "C-7",
                "currency": "CHF",
                "amount": "8",
                "min_quantity": "10.0",
            }
        )
        assert price.key_of(payload) == "list|A-1|C-7|CHF|10"

    def test_equal_quantities_give_equal_keys(self) -> None:
        price = BUILTIN_ENTITIES["price"]
        keys = {
            price.key_of(
                price.validate_payload(
                    {"sku": "A", "currency": "EUR", "amount": "1", "min_quantity": q}
                )
            )
            for q in ("10", "10.00", 10, "1E+1")
        }
        assert keys == {"list|A||EUR|10"}

    def test_separator_and_escape_in_key_parts_do_not_collide(self) -> None:
        entity = EntitySpec.model_validate({"key": ["a", "b"], "fields": {"a": {}, "b": {}}})
        one = entity.key_of({"a": "x|y", "b": "z"})
        assert one == "x\\|y|z"
        assert one != entity.key_of({"a": "x", "b": "y|z"})
        assert entity.key_of({"a": "a\\", "b": "b|c"}) != entity.key_of({"a": "a|b\\", "b": "c"})

    def test_single_key(self) -> None:
        customer = BUILTIN_ENTITIES["customer"]
        assert customer.key_of({"code": "C-1", "name": "x"}) == "C-1"

    def test_missing_key_field(self) -> None:
        entity = EntitySpec.model_validate({"key": ["k"], "fields": {"k": {}, "v": {}}})
        with pytest.raises(DataError) as info:
            entity.validate_payload({"v": "1"})
        assert (info.value.path, info.value.reason) == ("k", "business key field is missing")


class TestPaymentToken:
    TOKEN = BUILTIN_ENTITIES["payment_token"]

    def validate(self, **fields: Any) -> dict[str, Any]:
        return self.TOKEN.validate_payload({"token": "tok_abc", "customer_code": "C-1", **fields})

    def refused(self, **fields: Any) -> DataError:
        with pytest.raises(DataError) as info:
            self.validate(**fields)
        return info.value

    @pytest.mark.parametrize(
        "card",
        [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555 5555 5555 4444",
            "378282246310005",
            "6011111111111117",
            "tok_4242424242424242",
            "4242 4242 4242 4242 123",
            "4242424242424242 12/27",
            "card no. 5105-1051-0510-5100, exp 10/26",
        ],
    )
    def test_card_numbers_are_refused_in_token_and_holder(self, card: str) -> None:
        error = self.refused(token=card)
        assert error.path == "token"
        assert error.reason == "looks like a raw payment card number; only tokens are accepted"
        assert self.refused(holder=f"Eva {card}").path == "holder"

    @pytest.mark.parametrize(
        "token",
        [
            "tok_1OuVx2LkdIwHu7ix",
            "pm_card_visa",
            "4111111111111112",  # 16 digits, Luhn fails
            "1234 5678 9012 3456",  # Luhn fails
            "123456789012",  # 12 digits are too few for a card
            "00004111111111111111",  # 20 digits are too many
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "2024-03-04",
        ],
    )
    def test_tokens_and_other_digit_strings_are_accepted(self, token: str) -> None:
        assert self.validate(token=token)["token"] == token

    def test_last4(self) -> None:
        assert self.validate(last4="0042")["last4"] == "0042"
        for bad in ("42", "12345", "abcd"):
            error = self.refused(last4=bad)
            assert error.path == "last4"
            assert "does not match" in error.reason

    def test_exp_month_range(self) -> None:
        assert self.validate(exp_month=1)["exp_month"] == 1
        assert self.validate(exp_month="12")["exp_month"] == 12
        error = self.refused(exp_month=13)
        assert (error.path, error.reason) == ("exp_month", "13 is above the maximum 12")
        error = self.refused(exp_month="0")
        assert (error.path, error.reason) == ("exp_month", "0 is below the minimum 1")
        assert self.refused(exp_month="1.5").reason == "not a whole number: '1.5'"

    def test_default_is_false(self) -> None:
        assert self.validate()["default"] is False


class TestRejections:
    def test_unknown_fields_are_refused(self) -> None:
        with pytest.raises(DataError) as info:
            BUILTIN_ENTITIES["product"].validate_payload({"sku": "A", "name": "B", "colour": "red"})
        assert (info.value.path, info.value.reason) == ("colour", "not a field of this entity")

    def test_unknown_nested_fields_are_refused_with_their_path(self) -> None:
        data = {**CUSTOMER, "addresses": [{"city": "Berlin"}, {"city": "Bonn", "planet": "Earth"}]}
        with pytest.raises(DataError) as info:
            BUILTIN_ENTITIES["customer"].validate_payload(data)
        assert str(info.value) == "addresses[1].planet: not a field of this entity"

    @pytest.mark.parametrize(
        ("entity", "data", "path"),
        [
            ("customer", {"code": "C-1"}, "name"),
            ("customer", {"code": "C-1", "name": ""}, "name"),
            ("price", {"sku": "A", "currency": "EUR"}, "amount"),
            ("order", {"number": "1"}, "customer_code"),
            ("booking", {"order_code": "P", "event": "START"}, "timestamp"),
            (
                "inventory",
                {"sku": "A", "warehouse": "W", "quantity": "1", "allocations": [{}]},
                "allocations[0].customer_code",
            ),
        ],
    )
    def test_required_fields(self, entity: str, data: dict[str, Any], path: str) -> None:
        with pytest.raises(DataError) as info:
            BUILTIN_ENTITIES[entity].validate_payload(data)
        assert (info.value.path, info.value.reason) == (path, "required field is missing")

    @pytest.mark.parametrize(
        ("entity", "data", "path", "reason"),
        [
            (
                "product",
                {"sku": "A", "name": "B", "weight": "-1"},
                "weight",
                "-1 is below the minimum 0",
            ),
            ("product", {"sku": "A", "name": "B", "ean": "123"}, "ean", "'123' does not match"),
            (
                "customer",
                {"code": "1", "name": "n", "currency": "eur"},
                "currency",
                "'eur' does not match",
            ),
            (
                "production_order",
                {"order_code": "P", "status": "paused"},
                "status",
                "'paused' is not one of planned, running, finished, incomplete",
            ),
            (
                "order",
                {"number": "1", "customer_code": "C", "lines": "x"},
                "lines",
                "expected a list",
            ),
            (
                "order",
                {"number": "1", "customer_code": "C", "lines": ["x"]},
                "lines[0]",
                "expected an object",
            ),
            (
                "price",
                {"sku": "A", "currency": "EUR", "amount": "1", "valid_from": "1.2.2024"},
                "valid_from",
                "not a date",
            ),
        ],
    )
    def test_constraints(self, entity: str, data: dict[str, Any], path: str, reason: str) -> None:
        with pytest.raises(DataError) as info:
            BUILTIN_ENTITIES[entity].validate_payload(data)
        assert info.value.path == path
        assert reason in info.value.reason


VEHICLE: dict[str, Any] = {
    "description": "A vehicle registered on the warranty platform",
    "key": ["vin"],
    "fields": {
        "vin": {"type": "string", "required": True, "pattern": "[A-HJ-NPR-Z0-9]{17}"},
        "model": {"type": "string", "required": True},
        "model_year": {"type": "integer", "minimum": 1990, "maximum": 2100},
        "first_registration": {"type": "date"},
        "mileage_km": {"type": "decimal", "minimum": 0},
        "options": {"type": "list", "items": "string"},
        "telemetry": {"type": "json"},
    },
}
WARRANTY_CLAIM: dict[str, Any] = {
    "key": ["claim_no", "dealer"],
    "fields": {
        "claim_no": {"required": True},
        "dealer": {"required": True},
        "vin": {"required": True},
        "status": {"choices": ["open", "approved", "rejected"], "default": "open"},
        "amount": {"type": "decimal", "minimum": 0},
        "parts": {
            "type": "list",
            "fields": {"part_no": {"required": True}, "quantity": {"type": "integer"}},
        },
        "filed_at": {"type": "datetime"},
    },
}


class TestDeclaredEntities:
    def test_vehicle(self) -> None:
        vehicle = EntitySpec.model_validate(VEHICLE)
        payload = vehicle.validate_payload(
            {
                "vin": "WVWZZZ1JZXW000001",
                "model": "VW Golf",
                "model_year": "2021",
                "first_registration": "2021-05-03",
                "mileage_km": "45210.50",
                "options": ["sunroof", "towbar"],
                "telemetry": {"battery": [12.6, 12.4], "ok": True},
            }
        )
        assert payload["model_year"] == 2021
        assert payload["mileage_km"] == "45210.5"
        assert payload["telemetry"] == {"battery": [12.6, 12.4], "ok": True}
        assert vehicle.key_of(payload) == "WVWZZZ1JZXW000001"
        with pytest.raises(DataError, match="does not match"):
            vehicle.validate_payload({"vin": "WVWZZZ1JZXW00000I", "model": "x"})
        with pytest.raises(DataError, match="1980 is below the minimum 1990"):
            vehicle.validate_payload({"vin": "WVWZZZ1JZXW000001", "model": "x", "model_year": 1980})

    def test_warranty_claim(self) -> None:
        claim = EntitySpec.model_validate(WARRANTY_CLAIM)
        payload = claim.validate_payload(
            {
                "claim_no": "WC-1",
                "dealer": "D-7",
                "vin": "WVWZZZ1JZXW000001",
                "amount": "199.90",
                "parts": [{"part_no": "P-1", "quantity": "2"}],
                "filed_at": "2024-03-04 10:00",
            }
        )
        assert payload["status"] == "open"
        assert payload["parts"] == [{"part_no": "P-1", "quantity": 2}]
        assert payload["filed_at"] == "2024-03-04T10:00:00Z"
        assert claim.key_of(payload) == "WC-1|D-7"
        with pytest.raises(DataError) as info:
            claim.validate_payload({"claim_no": "1", "dealer": "D", "vin": "V", "parts": [{}]})
        assert str(info.value) == "parts[0].part_no: required field is missing"

    def test_catalog_has_builtins_and_declarations(self) -> None:
        catalog = EntityCatalog(
            {
                "vehicle": EntitySpec.model_validate(VEHICLE),
                "warranty_claim": EntitySpec.model_validate(WARRANTY_CLAIM),
            }
        )
        assert len(catalog) == len(BUILTIN_ENTITIES) + 2
        assert list(catalog)[-2:] == ["vehicle", "warranty_claim"]
        assert catalog["warranty_claim"].key == ("claim_no", "dealer")
        assert catalog["customer"] is BUILTIN_ENTITIES["customer"]
        assert "vehicle" in catalog and "truck" not in catalog
        assert catalog.get("truck") is None
        assert set(EntityCatalog()) == set(BUILTIN_ENTITIES)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({"key": ["vin"], "fields": {"model": {}}}, "key field 'vin' is not among the fields"),
            ({"key": [], "fields": {"a": {}}}, "at least 1 item"),
            (
                {"key": ["parts"], "fields": {"parts": {"type": "list", "items": "string"}}},
                "key field 'parts' must be a scalar",
            ),
            ({"key": ["a"], "fields": {"a": {"type": "money"}}}, "Input should be 'string'"),
            ({"key": ["a"], "fields": {"a": {}, "b": {"type": "list"}}}, "a list field needs"),
            ({"key": ["a"], "fields": {"a": {"fields": {"x": {}}}}}, "'fields' only applies"),
            ({"key": ["a"], "fields": {"a": {"pattern": "[A-Z"}}}, "invalid pattern '[A-Z'"),
            ({"key": ["a"], "fields": {"a": {"colour": "red"}}}, "Extra inputs are not permitted"),
            ({"key": ["a"], "fields": {"a": {}}, "owner": "me"}, "Extra inputs are not permitted"),
        ],
    )
    def test_bad_declarations(self, spec: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError) as info:
            EntitySpec.model_validate(spec)
        assert message in str(info.value)
