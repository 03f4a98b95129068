"""Field types: coercion into canonical, JSON-friendly values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erpbridge.errors import DataError
from erpbridge.model import FieldSpec, coerce_value
from erpbridge.pci import has_card_number as looks_like_card_number
from erpbridge.pci import luhn_ok


def coerce(type_: str, value: Any, **spec: Any) -> Any:
    return coerce_value(FieldSpec.model_validate({"type": type_, **spec}), value, "f")


def refused(type_: str, value: Any, **spec: Any) -> str:
    with pytest.raises(DataError) as info:
        coerce(type_, value, **spec)
    assert info.value.path == "f"
    return info.value.reason


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("19.90", "19.9"),
        ("100", "100"),
        ("1E+2", "100"),
        ("1.000", "1"),
        ("-0.00", "0"),
        ("0E-8", "0"),
        (" 7 ", "7"),
        ("-12.50", "-12.5"),
        ("0.000001", "0.000001"),
        (Decimal("2.50"), "2.5"),
        (3, "3"),
        (0.1, "0.1"),
        ("1E+30", "1000000000000000000000000000000"),
        # More digits than the decimal context's 28 are kept, not rounded.
        ("12345678901234567890.123456789012", "12345678901234567890.123456789012"),
    ],
)
def test_decimal_normalisation(value: Any, text: str) -> None:
    assert coerce("decimal", value) == text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12,5", "not a number: '12,5'"),
        ("abc", "not a number: 'abc'"),
        (True, "expected a number, got boolean True"),
        ([1], "expected a number, got list"),
        ("NaN", "not a finite number: 'NaN'"),
        ("Infinity", "not a finite number: 'Infinity'"),
        ("1E+999999999", "number out of range: '1E+999999999'"),
        ("1E-500", "number out of range: '1E-500'"),
    ],
)
def test_not_decimals(value: Any, reason: str) -> None:
    assert refused("decimal", value) == reason


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**40), max_value=10**40))
def test_decimal_text_is_exact_and_stable(value: Decimal) -> None:
    text = coerce("decimal", value)
    assert Decimal(text) == value
    assert "E" not in text and text != "-0"
    assert coerce("decimal", text) == text


def test_integers() -> None:
    assert coerce("integer", "42") == 42
    assert coerce("integer", "42.0") == 42
    assert coerce("integer", Decimal("1E+3")) == 1000
    assert refused("integer", "4.2") == "not a whole number: '4.2'"
    assert refused("integer", False) == "expected a number, got boolean False"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (" YES ", True),
        ("J", True),
        ("ja", True),
        ("x", True),
        ("on", True),
        (1, True),
        (Decimal(0), False),
        ("", False),
        ("nein", False),
        ("off", False),
        ("N", False),
    ],
)
def test_booleans(value: Any, expected: bool) -> None:
    assert coerce("boolean", value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, 1.0, [True]])
def test_not_booleans(value: Any) -> None:
    assert refused("boolean", value).startswith("not a boolean")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-29", "2024-02-29"),
        ("2024-02-29T23:59:59Z", "2024-02-29"),
        (date(2024, 1, 2), "2024-01-02"),
        (datetime(2024, 1, 2, 23, 0), "2024-01-02"),
    ],
)
def test_dates(value: Any, expected: str) -> None:
    assert coerce("date", value) == expected


@pytest.mark.parametrize("value", ["2023-02-29", "29.02.2024", "2024", 20240229])
def test_not_dates(value: Any) -> None:
    reason = refused("date", value)
    assert reason.startswith(("not a date", "expected a date"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-04T10:15:00+01:00", "2024-03-04T09:15:00Z"),
        ("2024-03-04T10:15:00Z", "2024-03-04T10:15:00Z"),
        ("2024-03-04 10:15", "2024-03-04T10:15:00Z"),
        ("2024-03-04T10:15:00.250-05:00", "2024-03-04T15:15:00.250000Z"),
        ("2024-03-04", "2024-03-04T00:00:00Z"),
        (date(2024, 3, 4), "2024-03-04T00:00:00Z"),
        (
            datetime(2024, 3, 4, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2024-03-04T06:30:00Z",
        ),
        (datetime(2024, 3, 4, 12, tzinfo=UTC), "2024-03-04T12:00:00Z"),
    ],
)
def test_datetimes_are_utc_with_z(value: Any, expected: str) -> None:
    assert coerce("datetime", value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "not a date-time (ISO 8601): 'yesterday'"),
        (1700000000, "expected a date-time, got int"),
        ("0001-01-01T00:00:00+01:00", "date-time out of range: '0001-01-01T00:00:00+01:00'"),
        ("9999-12-31T23:00:00-05:00", "date-time out of range"),
    ],
)
def test_not_datetimes(value: Any, reason: str) -> None:
    assert reason in refused("datetime", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (10001, "10001"),
        (Decimal("1.50"), "1.5"),
        (True, "true"),
        (2.5, "2.5"),
        (date(2024, 1, 2), "2024-01-02"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),
    ],
)
def test_strings(value: Any, expected: str) -> None:
    assert coerce("string", value) == expected


def test_not_strings() -> None:
    assert refused("string", {"a": 1}) == "expected text, got dict"
    assert refused("string", Decimal("NaN")) == "not a finite number: Decimal('NaN')"


def test_string_constraints() -> None:
    assert refused("string", "abcdef", max_length=5) == "longer than 5 characters"
    assert coerce("string", "DE", pattern="[A-Z]{2}") == "DE"
    assert refused("string", "DEU", pattern="[A-Z]{2}") == "'DEU' does not match '[A-Z]{2}'"
    assert refused("string", "b", choices=["a"]) == "'b' is not one of a"


def test_lists_and_objects() -> None:
    assert coerce("list", ["a", 1], items="string") == ["a", "1"]
    assert coerce("list", ("1", "2"), items="integer") == [1, 2]
    assert refused("list", "a,b", items="string") == "expected a list, got str"
    assert refused("list", {"a": 1}, items="string") == "expected a list, got dict"
    assert coerce("list", {"x": "1"}, fields={"x": {"type": "integer"}}) == [{"x": 1}]
    with pytest.raises(DataError) as info:
        coerce("list", ["1", "x"], items="integer")
    assert (info.value.path, info.value.reason) == ("f[1]", "not a number: 'x'")
    assert coerce("object", {"x": "2"}, fields={"x": {"type": "decimal"}}) == {"x": "2"}
    assert refused("object", ["x"], fields={"x": {}}) == "expected an object, got list"
    assert coerce("json", {"any": [1, {"thing": None}]}) == {"any": [1, {"thing": None}]}


def test_none_stays_none() -> None:
    for type_ in ("string", "integer", "decimal", "boolean", "date", "datetime", "json"):
        assert coerce(type_, None) is None


class TestCardNumbers:
    @pytest.mark.parametrize(
        "digits", ["4111111111111111", "5555555555554444", "378282246310005", "79927398713"]
    )
    def test_luhn_valid(self, digits: str) -> None:
        assert luhn_ok(digits)

    @pytest.mark.parametrize("digits", ["4111111111111112", "1234567890123456", "79927398710"])
    def test_luhn_invalid(self, digits: str) -> None:
        assert not luhn_ok(digits)

    @pytest.mark.parametrize(
        "text",
        [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "pay with 4111111111111111 please",
            "4111 1111 1111 1111 123",
            "cvc 123 4111 1111 1111 1111",
            "4111111111111111 12/26",
            "3782 822463 10005",
            "6011000990139424",
            "4222222222222",  # 13 digits
        ],
    )
    def test_found(self, text: str) -> None:
        assert looks_like_card_number(text)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "tok_abc",
            "4111111111111112",
            "411111111111",  # 12 digits
            "41111111111111111111",  # 20 digits in one run
            "4111 1111 1111 11",  # 14 digits, Luhn fails
            "order 12345, line 10",
            "2024-03-04 10:15:00",
        ],
    )
    def test_not_found(self, text: str) -> None:
        assert not looks_like_card_number(text)

    def test_guard_on_a_field(self) -> None:
        assert refused("string", "4111 1111 1111 1111", no_card_numbers=True) == (
            "looks like a raw payment card number; only tokens are accepted"
        )
        assert coerce("string", "4111 1111 1111 1111") == "4111 1111 1111 1111"

    @given(
        st.text(alphabet="0123456789", min_size=15, max_size=15),
        st.sampled_from(["", " ", "-"]),
        st.sampled_from(["", "name ", "12 "]),
        st.sampled_from(["", " 123", " 12/27", ", exp"]),
    )
    def test_any_luhn_valid_16_digits_are_found(
        self, body: str, separator: str, before: str, after: str
    ) -> None:
        check = next(d for d in "0123456789" if luhn_ok(body + d))
        number = body + check
        grouped = separator.join(number[i : i + 4] for i in range(0, 16, 4))
        assert looks_like_card_number(before + grouped + after)
