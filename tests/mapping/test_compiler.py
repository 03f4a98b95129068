"""Compiling mappings and applying them to source records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erpbridge.errors import DataError
from erpbridge.mapping import (
    CompiledMapping,
    CurrencyRates,
    FieldMapping,
    MappingCompileError,
    MappingSpec,
    compile_mapping,
)
from erpbridge.model import BUILTIN_ENTITIES, EntitySpec

CUSTOMER = BUILTIN_ENTITIES["customer"]
PRODUCT = BUILTIN_ENTITIES["product"]
PRICE = BUILTIN_ENTITIES["price"]
RATES = CurrencyRates(base="EUR", rates={"USD": Decimal("1.10"), "CHF": Decimal("0.95")})


def fm(**entry: Any) -> FieldMapping:
    """A field mapping as it comes out of YAML (``from`` is a keyword in Python)."""
    return FieldMapping.model_validate(entry)


def compiled(spec: dict[str, Any] | None, entity: EntitySpec = CUSTOMER) -> CompiledMapping:
    return compile_mapping(spec, entity, RATES)


def customer(extra: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Map ``record`` with ``code``/``name`` from ``No``/``Name`` plus ``extra`` fields."""
    spec: dict[str, Any] = {"code": "No", "name": "Name", **extra}
    return compiled(spec)({"No": "C-1", "Name": "Acme", **record})


def rejection(
    spec: dict[str, Any], record: dict[str, Any], entity: EntitySpec = CUSTOMER
) -> DataError:
    mapping = compiled(spec, entity)
    with pytest.raises(DataError) as info:
        mapping(record)
    return info.value


def compile_problems(spec: dict[str, Any], entity: EntitySpec = CUSTOMER) -> list[tuple[str, str]]:
    with pytest.raises(MappingCompileError) as info:
        compile_mapping(spec, entity, RATES)
    return info.value.problems


class TestPaths:
    def test_rename(self) -> None:
        out = compiled({"code": "KdNr", "name": "Name1"})({"KdNr": "10001", "Name1": "Acme"})
        assert out == {"code": "10001", "name": "Acme", "locked": False}

    def test_nested_path(self) -> None:
        record = {"id": "1", "company": {"legal": {"name": "Acme AG"}}}
        assert compiled({"code": "id", "name": "company.legal.name"})(record)["name"] == "Acme AG"

    def test_list_index_in_a_path(self) -> None:
        record = {"id": "1", "names": ["Acme", "Acme AG"], "mails": [{"to": "a@x.example"}]}
        out = compiled({"code": "id", "name": "names.1", "email": "mails.0.to"})(record)
        assert (out["name"], out["email"]) == ("Acme AG", "a@x.example")

    def test_index_out_of_range_or_on_a_non_list_is_missing(self) -> None:
        spec = {"code": "id", "name": "n", "email": "mails.3.to", "phone": "n.0"}
        out = compiled(spec)({"id": "1", "n": "Acme", "mails": [{"to": "x"}]})
        assert "email" not in out and "phone" not in out

    def test_a_literal_dotted_key_wins_over_nesting(self) -> None:
        record = {"id": "1", "n": "x", "addr.city": "Literal", "addr": {"city": "Nested"}}
        out = compiled({"code": "id", "name": "addr.city"})(record)
        assert out["name"] == "Literal"
        out = compiled({"code": "id", "name": "addr.city"})({"id": "1", "addr": {"city": "Nested"}})
        assert out["name"] == "Nested"

    def test_missing_parts_give_missing(self) -> None:
        out = compiled({"code": "id", "name": "n", "email": "a.b.c"})({"id": "1", "n": "x"})
        assert "email" not in out


class TestTemplates:
    def test_placeholders(self) -> None:
        spec = {"name": fm(template="{First} {Last}")}
        assert customer(spec, {"First": "Hans", "Last": "Müller"})["name"] == "Hans Müller"

    def test_nested_placeholders_and_spaces(self) -> None:
        spec = {"name": fm(template="{ person.first } {person.last} ({No})")}
        out = customer(spec, {"person": {"first": "Ada", "last": "Lovelace"}})
        assert out["name"] == "Ada Lovelace (C-1)"

    def test_empty_placeholders_leave_no_stray_spaces_at_the_ends(self) -> None:
        spec = {"name": fm(template="{First} {Last}")}
        assert customer(spec, {"First": "", "Last": "Müller"})["name"] == "Müller"

    def test_all_placeholders_empty_is_missing(self) -> None:
        spec = {"code": "No", "name": "Name", "lock_reason": fm(template="{R1} / {R2}")}
        out = compiled(spec)({"No": "1", "Name": "n", "R1": " ", "R2": None})
        assert "lock_reason" not in out

    def test_all_placeholders_empty_takes_the_default(self) -> None:
        spec = {"lock_reason": fm(template="{R1}-{R2}", default="none")}
        assert customer(spec, {})["lock_reason"] == "none"

    def test_all_placeholders_empty_and_required(self) -> None:
        error = rejection(
            {"code": "No", "name": fm(template="{A} {B}", required=True)}, {"No": "1"}
        )
        assert (error.path, error.reason) == ("name", "required, but '{A} {B}' is empty")

    def test_a_template_without_placeholders_is_its_text(self) -> None:
        assert customer({"payment_terms": fm(template="30 days net")}, {})["payment_terms"] == (
            "30 days net"
        )

    def test_non_text_values_are_rendered(self) -> None:
        out = customer({"lock_reason": fm(template="{a}/{b}")}, {"a": 7, "b": Decimal("1.5")})
        assert out["lock_reason"] == "7/1.5"


class TestTransformsInAMapping:
    def test_transforms_run_in_order(self) -> None:
        spec = {"email": fm(**{"from": "Mail", "transforms": ["trim", "lower", {"prefix": "x-"}]})}
        assert customer(spec, {"Mail": "  A@B.EXAMPLE "})["email"] == "x-a@b.example"

    def test_decimal_comma_into_a_decimal_field(self) -> None:
        spec = {"credit_limit": fm(**{"from": "Limit", "transforms": [{"decimal": ","}]})}
        assert customer(spec, {"Limit": "12.500,00"})["credit_limit"] == "12500"
        assert customer(spec, {"Limit": "1.234,50-"})["credit_limit"] == "-1234.5"

    def test_a_transform_that_fails_rejects_the_record_naming_field_and_source(self) -> None:
        spec = {
            "code": "No",
            "name": "Name",
            "credit_limit": fm(**{"from": "Limit", "transforms": [{"decimal": ","}]}),
        }
        error = rejection(spec, {"No": "1", "Name": "n", "Limit": "viel"})
        assert error.path == "credit_limit"
        assert error.reason == "not a number: 'viel' (from 'Limit')"

    def test_a_transform_emptying_the_value_makes_it_missing(self) -> None:
        spec = {"vat_id": fm(**{"from": "Text", "transforms": [{"regex": r"(DE\d{9})"}, "lower"]})}
        assert "vat_id" not in customer(spec, {"Text": "no id"})
        assert customer(spec, {"Text": "id DE123456789."})["vat_id"] == "de123456789"
        with_default = {
            "vat_id": fm(**{"from": "T", "transforms": [{"regex": "x"}], "default": "-"})
        }
        assert customer(with_default, {"T": "abc"})["vat_id"] == "-"

    def test_transforms_are_skipped_for_missing_values(self) -> None:
        spec = {"credit_limit": fm(**{"from": "Limit", "transforms": [{"decimal": ","}]})}
        assert "credit_limit" not in customer(spec, {"Limit": "  "})

    def test_split_into_a_list_of_strings(self) -> None:
        spec = {
            "order_code": "id",
            "issues": fm(**{"from": "notes", "transforms": [{"split": "|"}]}),
        }
        out = compiled(spec, BUILTIN_ENTITIES["production_order"])({"id": "P1", "notes": "a | b"})
        assert out["issues"] == ["a", "b"]

    def test_dates_and_times_become_canonical(self) -> None:
        spec = {
            "order_code": "id",
            "start": fm(
                **{
                    "from": "begin",
                    "transforms": [
                        {"datetime": {"format": "%d.%m.%Y %H:%M", "timezone": "Europe/Berlin"}}
                    ],
                }
            ),
            "end": fm(**{"from": "finish", "transforms": [{"local_time": "Europe/Berlin"}]}),
        }
        record = {"id": "P1", "begin": "01.07.2024 08:00", "finish": "2024-01-15T08:00:00"}
        out = compiled(spec, BUILTIN_ENTITIES["production_order"])(record)
        assert out["start"] == "2024-07-01T06:00:00Z"
        assert out["end"] == "2024-01-15T07:00:00Z"

    def test_unix_time_into_a_datetime_field(self) -> None:
        spec = {"updated_at": fm(**{"from": "ts", "transforms": ["unix_time"]})}
        assert customer(spec, {"ts": "1700000000"})["updated_at"] == "2023-11-14T22:13:20Z"

    def test_date_into_a_date_field(self) -> None:
        spec = {
            "sku": "s",
            "currency": fm(value="EUR"),
            "amount": "a",
            "valid_from": fm(**{"from": "vf", "transforms": [{"date": "%d.%m.%Y"}]}),
        }
        out = compiled(spec, PRICE)({"s": "A", "a": "1", "vf": "01.02.2024"})
        assert out["valid_from"] == "2024-02-01"

    def test_round_after_conversion(self) -> None:
        spec = {
            "sku": "s",
            "name": "n",
            "weight": fm(**{"from": "w", "unit": {"from": "oz", "to": "kg"}, "round": 3}),
        }
        assert compiled(spec, PRODUCT)({"s": "A", "n": "x", "w": "10"})["weight"] == "0.283"


class TestValueMaps:
    SPEC: dict[str, Any] = {"payment_terms": fm(**{"from": "Terms", "map": {"Z14": "14 days"}})}

    def test_known_value(self) -> None:
        assert customer(self.SPEC, {"Terms": "Z14"})["payment_terms"] == "14 days"
        assert customer(self.SPEC, {"Terms": " Z14 "})["payment_terms"] == "14 days"

    def test_unknown_value_rejects_the_record(self) -> None:
        spec = {"code": "No", "name": "Name", **self.SPEC}
        error = rejection(spec, {"No": "1", "Name": "n", "Terms": "Z99"})
        assert (error.path, error.reason) == (
            "payment_terms",
            "no mapping for value 'Z99' (from 'Terms')",
        )

    def test_fallback(self) -> None:
        spec = {
            "payment_terms": fm(**{"from": "T", "map": {"Z14": "14 days"}, "fallback": "other"})
        }
        assert customer(spec, {"T": "Z99"})["payment_terms"] == "other"
        assert customer(spec, {"T": "Z14"})["payment_terms"] == "14 days"

    def test_keep_unmapped(self) -> None:
        spec = {
            "payment_terms": fm(**{"from": "T", "map": {"Z14": "14 days"}, "keep_unmapped": True})
        }
        assert customer(spec, {"T": "Z99"})["payment_terms"] == "Z99"

    def test_map_to_booleans(self) -> None:
        spec = {"locked": fm(**{"from": "Sperre", "map": {"J": True, "N": False}})}
        assert customer(spec, {"Sperre": "J"})["locked"] is True
        assert customer(spec, {"Sperre": "N"})["locked"] is False

    def test_missing_value_is_not_mapped_but_defaulted(self) -> None:
        spec = {"locked": fm(**{"from": "S", "map": {"J": True}, "default": False})}
        assert customer(spec, {"S": ""})["locked"] is False

    def test_yaml_style_number_and_boolean_keys(self) -> None:
        # YAML reads `1: ...` and `true: ...` as a number and a boolean, not as text.
        spec = {
            "payment_terms": fm(**{"from": "T", "map": {1: "immediate", 30: "30 days"}}),
            "lock_reason": fm(**{"from": "R", "map": {True: "blocked", False: "free"}}),
        }
        out = customer(spec, {"T": "30", "R": "true"})
        assert (out["payment_terms"], out["lock_reason"]) == ("30 days", "blocked")
        out = customer(spec, {"T": 1, "R": False})
        assert (out["payment_terms"], out["lock_reason"]) == ("immediate", "free")
        assert customer(spec, {"T": " 1 ", "R": "false"})["lock_reason"] == "free"


class TestUnits:
    def spec(self, unit: dict[str, str]) -> dict[str, Any]:
        return {"sku": "s", "name": "n", "weight": fm(**{"from": "w", "unit": unit})}

    def test_fixed_unit(self) -> None:
        out = compiled(self.spec({"from": "g", "to": "kg"}), PRODUCT)(
            {"s": "A", "n": "x", "w": "1500"}
        )
        assert out["weight"] == "1.5"

    def test_unit_from_the_record(self) -> None:
        mapping = compiled(self.spec({"from_path": "u", "to": "kg"}), PRODUCT)
        assert mapping({"s": "A", "n": "x", "w": "2", "u": "lb"})["weight"] == "0.90718474"
        assert mapping({"s": "A", "n": "x", "w": "250", "u": "GRM"})["weight"] == "0.25"

    def test_unknown_unit_in_the_data_rejects_the_record(self) -> None:
        error = rejection(
            self.spec({"from_path": "u", "to": "kg"}),
            {"s": "A", "n": "x", "w": "2", "u": "sack"},
            PRODUCT,
        )
        assert (error.path, error.reason) == ("weight", "unknown unit 'sack' (from 'w')")

    def test_unit_of_the_wrong_dimension_in_the_data(self) -> None:
        error = rejection(
            self.spec({"from_path": "u", "to": "kg"}),
            {"s": "A", "n": "x", "w": "2", "u": "m"},
            PRODUCT,
        )
        assert error.path == "weight"
        assert "cannot convert m (length) to kg (mass)" in error.reason

    def test_unknown_units_at_compile_time(self) -> None:
        assert compile_problems(self.spec({"from": "furlong", "to": "kg"}), PRODUCT) == [
            ("weight.unit", "unknown unit 'furlong'")
        ]
        assert compile_problems(self.spec({"from_path": "u", "to": "stone"}), PRODUCT) == [
            ("weight.unit.to", "unknown unit 'stone'")
        ]
        assert compile_problems(self.spec({"from": "kg", "to": "m"}), PRODUCT) == [
            ("weight.unit", "cannot convert kg (mass) to m (length)")
        ]

    def test_non_numeric_quantity(self) -> None:
        error = rejection(
            self.spec({"from": "g", "to": "kg"}), {"s": "A", "n": "x", "w": "heavy"}, PRODUCT
        )
        assert (error.path, error.reason) == ("weight", "not a number: 'heavy' (from 'w')")


class TestCurrency:
    def spec(self, currency: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {
            "sku": "s",
            "currency": fm(value=currency["to"]),
            "amount": fm(**{"from": "p", "currency": currency, **extra}),
        }

    def test_fixed_source_currency(self) -> None:
        out = compiled(self.spec({"from": "USD", "to": "EUR"}), PRICE)({"s": "A", "p": "110"})
        assert out["amount"] == "100"

    def test_between_two_foreign_currencies(self) -> None:
        out = compiled(self.spec({"from": "CHF", "to": "USD"}), PRICE)({"s": "A", "p": "95"})
        assert (out["amount"], out["currency"]) == ("110", "USD")

    def test_source_currency_from_the_record(self) -> None:
        mapping = compiled(self.spec({"from_path": "cur", "to": "EUR"}, round=2), PRICE)
        assert mapping({"s": "A", "p": "11", "cur": " usd "})["amount"] == "10"
        assert mapping({"s": "A", "p": "10", "cur": "EUR"})["amount"] == "10"
        assert mapping({"s": "A", "p": "10", "cur": "CHF"})["amount"] == "10.53"

    def test_unknown_currency_in_the_data(self) -> None:
        error = rejection(
            self.spec({"from_path": "cur", "to": "EUR"}), {"s": "A", "p": "1", "cur": "GBP"}, PRICE
        )
        assert error.path == "amount"
        assert error.reason == "no exchange rate for 'GBP' (currency_rates) (from 'p')"

    def test_missing_rate_at_compile_time(self) -> None:
        assert compile_problems(self.spec({"from": "GBP", "to": "EUR"}), PRICE) == [
            ("amount.currency", "no exchange rate for 'GBP' in currency_rates")
        ]
        assert compile_problems(self.spec({"from_path": "c", "to": "JPY"}), PRICE) == [
            ("amount.currency", "no exchange rate for 'JPY' in currency_rates")
        ]

    def test_without_a_rates_table_only_the_base_is_known(self) -> None:
        spec = self.spec({"from": "EUR", "to": "EUR"})
        assert compile_mapping(spec, PRICE)({"s": "A", "p": "5"})["amount"] == "5"
        with pytest.raises(MappingCompileError, match="no exchange rate for 'USD'"):
            compile_mapping(self.spec({"from": "USD", "to": "EUR"}), PRICE)


class TestDefaultsAndRequired:
    def test_default_for_missing_and_empty(self) -> None:
        spec = {"payment_terms": fm(**{"from": "T", "default": "30 days"})}
        assert customer(spec, {})["payment_terms"] == "30 days"
        assert customer(spec, {"T": ""})["payment_terms"] == "30 days"
        assert customer(spec, {"T": "  "})["payment_terms"] == "30 days"
        assert customer(spec, {"T": "7 days"})["payment_terms"] == "7 days"

    def test_default_alone_is_a_constant_for_absent_values(self) -> None:
        assert customer({"currency": fm(default="EUR")}, {})["currency"] == "EUR"

    def test_constant_value(self) -> None:
        out = customer({"currency": fm(value="CHF"), "locked": fm(value=False)}, {})
        assert (out["currency"], out["locked"]) == ("CHF", False)

    def test_required_rejects_missing_and_empty(self) -> None:
        spec = {"code": "No", "name": "Name", "vat_id": fm(**{"from": "UStId", "required": True})}
        for record in ({"No": "1", "Name": "n"}, {"No": "1", "Name": "n", "UStId": " "}):
            error = rejection(spec, record)
            assert (error.path, error.reason) == ("vat_id", "required, but 'UStId' is empty")

    def test_entity_required_fields_reject_without_a_mapping_flag(self) -> None:
        error = rejection({"code": "No", "name": "Name"}, {"No": "1", "Name": ""})
        assert (error.path, error.reason) == ("name", "required field is missing")

    def test_entity_defaults_fill_in(self) -> None:
        out = compiled({"sku": "s", "name": "n"}, PRODUCT)({"s": "A", "n": "Bolt"})
        assert out == {
            "sku": "A",
            "name": "Bolt",
            "unit": "pcs",
            "weight_unit": "kg",
            "active": True,
        }


class TestObjectsAndLists:
    ADDRESSES: dict[str, Any] = {
        "addresses": fm(
            each="Adressen",
            fields={
                "type": fm(value="billing"),
                "city": "Ort",
                "country": fm(
                    **{"from": "Land", "transforms": ["upper"], "map": {"DE": "DE", "AT": "AT"}}
                ),
            },
        )
    }

    def test_each_maps_every_item(self) -> None:
        out = customer(
            self.ADDRESSES,
            {"Adressen": [{"Ort": "Berlin", "Land": "de"}, {"Ort": "Wien", "Land": "at"}]},
        )
        assert out["addresses"] == [
            {"type": "billing", "city": "Berlin", "country": "DE"},
            {"type": "billing", "city": "Wien", "country": "AT"},
        ]

    def test_one_object_where_a_list_is_expected(self) -> None:
        # XML with a single repeated child gives one dict, not a list.
        out = customer(self.ADDRESSES, {"Adressen": {"Ort": "Berlin", "Land": "de"}})
        assert out["addresses"] == [{"type": "billing", "city": "Berlin", "country": "DE"}]

    def test_missing_list_is_missing(self) -> None:
        assert "addresses" not in customer(self.ADDRESSES, {})

    def test_empty_list(self) -> None:
        assert customer(self.ADDRESSES, {"Adressen": []})["addresses"] == []

    def test_mapping_error_in_an_item_carries_its_index(self) -> None:
        spec = {"code": "No", "name": "Name", **self.ADDRESSES}
        record = {
            "No": "1",
            "Name": "n",
            "Adressen": [{"Ort": "B", "Land": "de"}, {"Ort": "Z", "Land": "ch"}],
        }
        error = rejection(spec, record)
        assert (error.path, error.reason) == (
            "addresses[1].country",
            "no mapping for value 'CH' (from 'Land')",
        )
        assert str(error) == "addresses[1].country: no mapping for value 'CH' (from 'Land')"

    def test_entity_error_in_an_item_carries_its_index(self) -> None:
        spec = {"code": "No", "name": "Name", "addresses": fm(each="A", fields={"country": "c"})}
        error = rejection(
            spec, {"No": "1", "Name": "n", "A": [{"c": "DE"}, {"c": "DE"}, {"c": "Deutschland"}]}
        )
        assert error.path == "addresses[2].country"
        assert "does not match" in error.reason

    def test_each_of_something_that_is_not_a_list(self) -> None:
        spec = {"code": "No", "name": "Name", "addresses": fm(each="A", fields={"city": "c"})}
        error = rejection(spec, {"No": "1", "Name": "n", "A": "Berlin"})
        assert (error.path, error.reason) == ("addresses", "'A' is not a list")
        error = rejection(spec, {"No": "1", "Name": "n", "A": [{"c": "x"}, "Berlin"]})
        assert (error.path, error.reason) == ("addresses[1]", "list item is not an object")

    def test_each_with_a_nested_source_path(self) -> None:
        spec = {"addresses": fm(each="data.addr", fields={"city": "town.name"})}
        out = customer(spec, {"data": {"addr": [{"town": {"name": "Graz"}}]}})
        assert out["addresses"] == [{"type": "other", "city": "Graz"}]

    def test_lines_of_an_order(self) -> None:
        spec = {
            "number": "OrderNo",
            "customer_code": "Customer",
            "lines": fm(
                each="Items",
                fields={
                    "line_no": "Pos",
                    "sku": fm(**{"from": "Article", "transforms": ["trim", "upper"]}),
                    "quantity": fm(**{"from": "Qty", "transforms": [{"decimal": ","}]}),
                    "unit_price": fm(
                        **{"from": "Price", "currency": {"from": "USD", "to": "EUR"}, "round": 2}
                    ),
                },
            ),
        }
        record = {
            "OrderNo": "SO-1",
            "Customer": "C-1",
            "Items": [
                {"Pos": "10", "Article": " ab-1 ", "Qty": "2,5", "Price": "11"},
                {"Pos": "20", "Article": "cd-2", "Qty": "1", "Price": "3.3"},
            ],
        }
        out = compiled(spec, BUILTIN_ENTITIES["order"])(record)
        assert out["lines"] == [
            {"line_no": 10, "sku": "AB-1", "quantity": "2.5", "unit_price": "10"},
            {"line_no": 20, "sku": "CD-2", "quantity": "1", "unit_price": "3"},
        ]

    def test_fields_build_an_object_from_the_same_record(self) -> None:
        spec = {
            "email_preferences": fm(
                fields={
                    "newsletter": fm(**{"from": "NL", "transforms": [{"boolean": ["J"]}]}),
                    "invoices": "Inv",
                }
            )
        }
        out = customer(spec, {"NL": "J", "Inv": "no"})
        assert out["email_preferences"] == {"newsletter": True, "invoices": False}

    def test_fields_with_a_source_object(self) -> None:
        spec = {
            "shipping_address": fm(
                **{
                    "from": "ship",
                    "fields": {
                        "city": "town",
                        "country": fm(**{"from": "cc", "transforms": ["upper"]}),
                    },
                }
            ),
            "number": "n",
            "customer_code": "c",
        }
        out = compiled(spec, BUILTIN_ENTITIES["order"])(
            {"n": "1", "c": "C", "ship": {"town": "Linz", "cc": "at"}}
        )
        assert out["shipping_address"] == {"type": "other", "city": "Linz", "country": "AT"}
        assert "shipping_address" not in compiled(spec, BUILTIN_ENTITIES["order"])(
            {"n": "1", "c": "C"}
        )

    def test_fields_over_something_that_is_not_an_object(self) -> None:
        spec = {
            "number": "n",
            "customer_code": "c",
            "shipping_address": fm(**{"from": "ship", "fields": {"city": "town"}}),
        }
        error = rejection(spec, {"n": "1", "c": "C", "ship": "Linz"}, BUILTIN_ENTITIES["order"])
        assert "expected an object, got str" in error.reason


class TestCoercion:
    def test_decimals_are_normalised_text(self) -> None:
        spec = {"credit_limit": "L"}
        for raw, canonical in [
            ("1000.00", "1000"),
            ("1E+3", "1000"),
            ("0.50", "0.5"),
            ("-0.00", "0"),
            (Decimal("12.3400"), "12.34"),
            (7, "7"),
            (2.5, "2.5"),
        ]:
            assert customer(spec, {"L": raw})["credit_limit"] == canonical, raw

    def test_datetimes_become_utc_with_z(self) -> None:
        spec = {"updated_at": "ts"}
        assert (
            customer(spec, {"ts": "2024-01-02T03:04:05+02:00"})["updated_at"]
            == "2024-01-02T01:04:05Z"
        )
        assert customer(spec, {"ts": "2024-01-02T03:04:05"})["updated_at"] == "2024-01-02T03:04:05Z"
        assert customer(spec, {"ts": "2024-01-02"})["updated_at"] == "2024-01-02T00:00:00Z"

    def test_booleans(self) -> None:
        for raw, value in [
            ("yes", True),
            ("J", True),
            ("x", True),
            ("0", False),
            ("nein", False),
            (1, True),
        ]:
            assert customer({"locked": "L"}, {"L": raw})["locked"] is value, raw

    def test_values_that_do_not_coerce(self) -> None:
        base = {"code": "No", "name": "Name"}
        error = rejection({**base, "locked": "L"}, {"No": "1", "Name": "n", "L": "maybe"})
        assert (error.path, error.reason) == ("locked", "not a boolean: 'maybe'")
        error = rejection({**base, "updated_at": "T"}, {"No": "1", "Name": "n", "T": "yesterday"})
        assert (error.path, error.reason) == (
            "updated_at",
            "not a date-time (ISO 8601): 'yesterday'",
        )
        error = rejection({**base, "credit_limit": "L"}, {"No": "1", "Name": "n", "L": "12,5"})
        assert (error.path, error.reason) == ("credit_limit", "not a number: '12,5'")

    def test_numbers_into_text_fields(self) -> None:
        assert compiled({"code": "No", "name": "N"})({"No": 10001, "N": "x"})["code"] == "10001"


class TestCompileErrors:
    def test_every_problem_is_reported_with_its_path(self) -> None:
        spec = {
            "code": fm(**{"from": "No", "transforms": ["cents", "trim", {"round": "two"}]}),
            "nickname": "Nick",
            "credit_limit": fm(**{"from": "L", "currency": {"from": "XYZ", "to": "EUR"}}),
            "addresses": fm(
                each="A",
                fields={"city": fm(**{"from": "c", "transforms": ["shout"]}), "planet": "p"},
            ),
            "email_preferences": fm(each="E", fields={"newsletter": "n"}),
            "name": fm(fields={"first": "f"}),
        }
        problems = compile_problems(spec)
        assert problems[0] == ("code.transforms[0]", "unknown transform 'cents'")
        assert problems[1] == (
            "code.transforms[2]",
            "transform 'round': the argument is the number of decimal places (0–12)",
        )
        assert problems[2][0] == "nickname"
        assert problems[2][1].startswith(
            "'nickname' is not a field of the entity (fields: code, name,"
        )
        assert problems[3:] == [
            ("credit_limit.currency", "no exchange rate for 'XYZ' in currency_rates"),
            ("addresses.city.transforms[0]", "unknown transform 'shout'"),
            (
                "addresses.planet",
                "'planet' is not a field of the entity (fields: type, name, street, street2, "
                "postal_code, city, region, country)",
            ),
            ("email_preferences", "'each' maps a list of objects, but this field is not one"),
            ("name", "'fields' maps an object, but this field is a string"),
        ]

    def test_the_error_message_lists_them_all(self) -> None:
        with pytest.raises(MappingCompileError) as info:
            compiled({"code": fm(**{"from": "No", "transforms": ["cents"]}), "bogus": "x"})
        assert str(info.value).startswith(
            "code.transforms[0]: unknown transform 'cents'; bogus: 'bogus' is not a field"
        )
        assert isinstance(info.value, ValueError)

    def test_each_on_a_list_of_scalars_is_refused(self) -> None:
        spec = {"order_code": "o", "issues": fm(each="i", fields={"x": "y"})}
        assert compile_problems(spec, BUILTIN_ENTITIES["production_order"]) == [
            ("issues", "'each' maps a list of objects, but this field is not one")
        ]


class TestIdentityAndRequiredFields:
    def test_identity_mapping_when_the_spec_is_none(self) -> None:
        mapping = compiled(None, PRICE)
        out = mapping({"sku": "A-1", "currency": "EUR", "amount": "9.90", "customer_code": "C1"})
        assert out == {
            "price_list": "list",
            "sku": "A-1",
            "customer_code": "C1",
            "currency": "EUR",
            "amount": "9.9",
            "min_quantity": "1",
        }
        assert mapping.required_fields == frozenset()

    def test_identity_mapping_ignores_unknown_source_fields(self) -> None:
        out = compiled(None)({"code": "1", "name": "Acme", "internal_flag": "x"})
        assert out == {"code": "1", "name": "Acme", "locked": False}

    def test_required_fields_are_the_top_level_sources(self) -> None:
        spec = {
            "code": "KdNr",
            "name": fm(template="{Name1} {Name2}"),
            "email": fm(**{"from": "Mail", "transforms": ["trim"]}),
            "currency": fm(value="EUR"),
            "payment_terms": fm(**{"from": "Terms", "default": "30"}),
            "email_preferences": fm(fields={"newsletter": "NL"}),
            "addresses": fm(each="Adr", fields={"city": "Ort"}),
            "phone": "contact.phone",
            "vat_id": "addr.vat",
        }
        assert compiled(spec).required_fields == frozenset({"KdNr", "Name1", "Name2", "Mail"})

    def test_a_literal_dotted_column_is_not_demanded_as_its_prefix(self) -> None:
        # A CSV header "addr.city" must not make the file look like it lacks a column "addr".
        mapping = compiled({"code": "No", "name": "addr.city"})
        assert "addr" not in mapping.required_fields
        assert mapping({"No": "1", "addr.city": "Berlin"})["name"] == "Berlin"


@given(
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=4),
    st.sampled_from([".", ","]),
    st.booleans(),
)
def test_decimal_parse_of_formatted_numbers_round_trips(
    amount: Decimal, separator: str, trailing_minus: bool
) -> None:
    """A number printed with thousands separators parses back to the same value."""
    text = f"{abs(amount):,.4f}"  # 1,234,567.1234
    if separator == ",":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    if amount < 0:
        text = text + "-" if trailing_minus else "-" + text
    spec = {"credit_limit": fm(**{"from": "L", "transforms": [{"decimal": separator}]})}
    out = customer(spec, {"L": text})
    assert Decimal(out["credit_limit"]) == amount
    round_trip = customer(
        {"credit_limit": fm(**{"from": "L", "transforms": [{"format_decimal": 4}]})},
        {"L": out["credit_limit"]},
    )
    assert Decimal(round_trip["credit_limit"]) == amount


SOURCE = {
    "KdNr": "10001",
    "Name1": "Acme",
    "Name2": "AG",
    "Limit": "12.500,00",
    "Sperre": "J",
    "Mail": " Info@Acme.Example ",
    "Adressen": [{"Ort": "Berlin", "Land": "de"}, {"Ort": "Wien", "Land": "at"}],
    "Extra": "ignored",
}
MAPPING: MappingSpec = {
    "code": "KdNr",
    "name": fm(template="{Name1} {Name2}"),
    "credit_limit": fm(**{"from": "Limit", "transforms": [{"decimal": ","}]}),
    "locked": fm(**{"from": "Sperre", "map": {"J": True, "N": False}}),
    "email": fm(**{"from": "Mail", "transforms": ["trim", "lower"]}),
    "addresses": fm(
        each="Adressen",
        fields={"city": "Ort", "country": fm(**{"from": "Land", "transforms": ["upper"]})},
    ),
}


@given(st.permutations(list(SOURCE)))
def test_the_payload_does_not_depend_on_the_order_of_source_keys(keys: list[str]) -> None:
    mapping = compile_mapping(MAPPING, CUSTOMER)
    shuffled = {key: SOURCE[key] for key in keys}
    assert mapping(shuffled) == mapping(SOURCE)


@given(st.permutations(list(MAPPING)))
def test_the_payload_does_not_depend_on_the_order_of_the_mapping(names: list[str]) -> None:
    reordered = {name: MAPPING[name] for name in names}
    payload = compile_mapping(reordered, CUSTOMER)(SOURCE)
    assert payload == compile_mapping(MAPPING, CUSTOMER)(SOURCE)
    assert list(payload) == list(compile_mapping(MAPPING, CUSTOMER)(SOURCE))


class TestItemsFromFlatColumns:
    """``items`` builds a list (billing and shipping address) from flat CSV columns."""

    SPEC = {
        "code": "K",
        "name": "N",
        "addresses": {
            "items": [
                {
                    "type": {"value": "billing"},
                    "city": "Ort",
                    "country": {"from": "Land", "transforms": ["upper"]},
                },
                {"type": {"value": "shipping"}, "city": "LOrt"},
            ]
        },
    }

    def compiled(self) -> Any:
        from pydantic import TypeAdapter

        from erpbridge.mapping.spec import MappingSpec
        from erpbridge.model import BUILTIN_ENTITIES

        return compile_mapping(
            TypeAdapter(MappingSpec).validate_python(self.SPEC), BUILTIN_ENTITIES["customer"]
        )

    def test_each_block_makes_one_item(self) -> None:
        payload = self.compiled()({"K": "1", "N": "x", "Ort": "Köln", "Land": "de", "LOrt": "Bonn"})
        assert payload["addresses"] == [
            {"type": "billing", "city": "Köln", "country": "DE"},
            {"type": "shipping", "city": "Bonn"},
        ]

    def test_an_item_with_nothing_but_constants_is_left_out(self) -> None:
        payload = self.compiled()({"K": "1", "N": "x", "Ort": "Köln", "LOrt": " "})
        assert payload["addresses"] == [{"type": "billing", "city": "Köln"}]
        assert "addresses" not in self.compiled()({"K": "1", "N": "x"})

    def test_the_columns_are_optional_in_a_file_header(self) -> None:
        assert self.compiled().required_fields == {"K", "N"}


class TestFusedPass:
    """Mapping and validation fused into one pass: the same payload or the same problems as
    the two passes (mapping, then the entity's validation) for any record."""

    ENTITY = EntitySpec(
        key=("number",),
        fields={
            "number": {"type": "string", "required": True},
            "day": {"type": "date"},
            "cents": {"type": "integer", "minimum": 0},
            "status": {"type": "string", "choices": ["new", "done"], "default": "new"},
            "weight": {"type": "decimal"},
            "at": {"type": "datetime"},
            "note": {"type": "string"},
        },
    )
    SPEC: dict[str, Any] = {
        "number": "n",
        "day": fm(**{"from": "d", "transforms": [{"date": "%d.%m.%Y"}]}),
        "cents": fm(**{"from": "t", "transforms": [{"multiply": 100}, "integer"]}),
        "status": fm(**{"from": "s", "map": {10: "new", 20: "done", 30: "lost"}}),
        "weight": "w",
        "at": "u",
    }

    @given(
        st.fixed_dictionaries(
            {
                "n": st.one_of(st.none(), st.just(""), st.just(" "), st.text(max_size=5)),
                "d": st.one_of(st.none(), st.sampled_from(["01.12.2019", "2019-12-01", "x"])),
                "t": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**6)),
                "s": st.one_of(st.none(), st.sampled_from([10, 20, 30, 40, "10", ""])),
                "w": st.one_of(st.none(), st.floats(), st.text(max_size=4), st.booleans()),
                "u": st.one_of(st.none(), st.sampled_from(["2020-01-01 00:00:00", "soon"])),
            }
        )
    )
    def test_same_result_as_the_two_passes(self, record: dict[str, Any]) -> None:
        fused = compiled(self.SPEC, self.ENTITY)
        two_passes = compiled(self.SPEC, self.ENTITY)
        two_passes.__dict__["_fused"] = None  # the cached fused pass, switched off

        def outcome(mapping: CompiledMapping) -> Any:
            try:
                return ("payload", list(mapping(record).items()))
            except DataError as exc:
                return ("problems", exc.problems)

        assert outcome(fused) == outcome(two_passes)
        assert fused.__dict__["_fused"] is not None

    # -- the columnar pass (a whole batch at once) agrees with the per-record pass -------------

    BATCH_ENTITY = EntitySpec(
        key=("number",),
        fields={
            **ENTITY.fields,
            "code": {"type": "string", "pattern": "[A-Z]{3}"},
            "count": {"type": "integer", "required": True},
            "flag": {"type": "boolean"},
            "label": {"type": "string", "default": "none"},
            "ref": {"type": "string", "required": True},
            "unmapped": {"type": "string", "default": "fixed"},
            "nothing": {"type": "integer"},
        },
    )
    BATCH_SPEC: dict[str, Any] = {
        **SPEC,
        "note": "x",
        "code": fm(**{"from": "c", "transforms": ["upper"]}),
        "count": "k",
        "flag": "f",
        "label": fm(template="{n}-{c}"),  # reads two columns: per record
        "ref": fm(**{"from": "r", "required": True}),
    }
    TEXTS = st.one_of(
        st.sampled_from(["eur", "EUR", "abc", "x" * 14, "0", "card 4111 1111 1111 1111"]),
        st.text(max_size=6),
    )
    CELLS = st.one_of(
        st.none(),
        st.sampled_from(["", " "]),
        TEXTS,
        st.integers(-3, 3),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
    )

    @settings(max_examples=300)
    @given(
        st.lists(
            st.fixed_dictionaries(
                {
                    "n": st.one_of(
                        st.none(), st.sampled_from(["A", "B", " ", ""]), st.text(max_size=3)
                    ),
                    "d": st.one_of(st.none(), st.sampled_from(["01.12.2019", "2019-12-01", "x"])),
                    "t": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**6)),
                    "s": st.one_of(st.none(), st.sampled_from([10, 20, 30, 40, "10", "", True])),
                    "w": st.one_of(st.none(), st.floats(), st.text(max_size=4), st.booleans()),
                    "u": st.one_of(st.none(), st.sampled_from(["2020-01-01 00:00:00", "soon"])),
                    "x": TEXTS,  # text only: the column's texts are checked at once
                    "c": CELLS,
                    "k": st.one_of(
                        st.integers(0, 3),
                        st.none(),
                        st.integers(-(10**102), 10**102),
                        st.sampled_from([1, True, 1.0, "1"]),
                    ),
                    "f": CELLS,
                    "r": st.one_of(TEXTS, CELLS),
                }
            ),
            min_size=1,
            max_size=40,
        ),
        st.sampled_from(["reject", "mask"]),
    )
    def test_columnar_pass_agrees_with_the_record_pass(
        self, records: list[dict[str, Any]], cards: str
    ) -> None:
        """Payloads, problems (with their field paths) and card-number handling: the same for
        every record whether the batch is mapped column by column or record by record."""
        mapping = compile_mapping(self.BATCH_SPEC, self.BATCH_ENTITY, cards=cards)  # type: ignore[arg-type]
        # Repeated values take the path that maps each distinct value once.
        batch = records + records
        plan = mapping._columnar
        assert plan is not None
        columnar = plan.map(batch)

        def outcome(record: dict[str, Any]) -> Any:
            try:
                return ("payload", list(mapping(record).items()))
            except DataError as exc:
                return ("problems", exc.problems)

        for record, payload in zip(batch, columnar, strict=True):
            expected = outcome(record)
            if payload is None:  # the caller maps it per record: it must have a problem
                assert expected[0] == "problems", record
            else:
                assert ("payload", list(payload.items())) == expected, record

    def test_map_batch_maps_a_batch_with_a_bad_row_and_keeps_the_others(self) -> None:
        mapping = compiled(self.SPEC, self.ENTITY)
        good = {"n": "A", "d": "01.12.2019", "t": 1.5, "s": 10, "w": 2.5, "u": None}
        bad = {**good, "n": "B", "d": "32.13.2019"}
        batch = [{**good, "n": f"N{i}"} for i in range(40)] + [bad]
        payloads = mapping.map_batch(batch)
        assert payloads[-1] is None
        with pytest.raises(DataError) as failed:
            mapping(bad)
        assert failed.value.path == "day"
        assert [p["number"] for p in payloads[:-1] if p is not None] == [f"N{i}" for i in range(40)]
        assert payloads[0] == mapping(batch[0])
        # A small batch (an event) is mapped record by record.
        assert mapping.map_batch(batch[:3]) == [None, None, None]

    @pytest.mark.parametrize("cards", ["reject", "mask"])
    def test_columnar_pass_finds_a_card_number_in_one_record_of_a_text_column(
        self, cards: str
    ) -> None:
        mapping = compile_mapping(self.BATCH_SPEC, self.BATCH_ENTITY, cards=cards)  # type: ignore[arg-type]
        good = {"n": "A", "x": "plain note text", "c": "eur", "k": 1, "f": True, "r": "z"}
        batch = [{**good, "n": f"N{i}"} for i in range(40)]
        batch[7]["x"] = "card 4111 1111 1111 1111"
        payloads = mapping._columnar.map(batch)
        if cards == "reject":
            assert payloads[7] is None
            with pytest.raises(DataError, match="payment card number"):
                mapping(batch[7])
        else:
            assert payloads[7] == mapping(batch[7])
            assert payloads[7] is not None and "4111 1111 1111 1111" not in payloads[7]["note"]
        assert payloads[8] == mapping(batch[8])

    @settings(max_examples=300)
    @given(
        st.lists(
            st.one_of(
                st.floats(),
                st.sampled_from([0.0, -0.0, 1e-5, 1e16, 100.0, 0.1, -2.5, 123456789012345.6]),
            ),
            min_size=1,
            max_size=30,
        )
    )
    def test_a_float_column_into_a_decimal_field_gives_the_record_pass_texts(
        self, weights: list[float]
    ) -> None:
        mapping = compiled(self.SPEC, self.ENTITY)
        batch = [{"n": f"N{i}", "w": w} for i, w in enumerate(weights)]
        for record, payload in zip(batch, mapping._columnar.map(batch), strict=True):
            try:
                expected: Any = mapping(record)
            except DataError:
                expected = None
            assert payload == expected, record
