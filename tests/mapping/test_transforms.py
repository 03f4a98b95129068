"""Every named transform of the mapping language, built as the compiler builds it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from erpbridge.mapping import TRANSFORMS
from erpbridge.mapping.transforms import build_transform

BERLIN = ZoneInfo("Europe/Berlin")


def apply(spec: str | dict[str, Any], value: Any) -> Any:
    name, fn = build_transform(spec)
    assert name == (spec if isinstance(spec, str) else next(iter(spec)))
    return fn(value)


def build_error(spec: Any) -> str:
    with pytest.raises(ValueError) as info:
        build_transform(spec)
    return str(info.value)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("trim", "  Müller GmbH \t", "Müller GmbH"),
        ("upper", "de", "DE"),
        ("lower", "Info@Example.COM", "info@example.com"),
        ("title", "hans müller", "Hans Müller"),
        ("capitalize", "hELLO world", "Hello world"),
        ("collapse_spaces", "  Haupt   strasse \t 7 ", "Haupt strasse 7"),
        ("string", 4711, "4711"),
        ("string", Decimal("1.50"), "1.50"),
        ("strip_leading_zeros", "0000471100", "471100"),
        ("strip_leading_zeros", "0000", "0"),
        ("strip_leading_zeros", 42, "42"),
        ({"zfill": 6}, "4711", "004711"),
        ({"zfill": 6}, 4711, "004711"),
        ({"zfill": 2}, "4711", "4711"),
        ({"prefix": "C-"}, 1001, "C-1001"),
        ({"suffix": "-DE"}, "WH1", "WH1-DE"),
        ({"replace": ["-", ""]}, "DE-123-456", "DE123456"),
        ({"replace": ["ß", "ss"]}, "Straße", "Strasse"),
        ({"regex": r"(\d{5})"}, "D-80331 München", "80331"),
        ({"regex": r"[A-Z]{2}\d+"}, "vat: DE123456789 (ok)", "DE123456789"),
        ({"regex": r"(\d+)-(\d+)"}, "10-20", "10"),
        ({"regex": r"\d+"}, "no digits here", None),
        ({"split": ";"}, "red; green ;blue", ["red", "green", "blue"]),
        ({"split": ","}, "single", ["single"]),
    ],
)
def test_text_transforms(spec: str | dict[str, Any], value: Any, expected: Any) -> None:
    assert apply(spec, value) == expected


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("decimal", "1234.50", Decimal("1234.50")),
        ("decimal", "1,234,567.5", Decimal("1234567.5")),
        ("decimal", " 12.5 ", Decimal("12.5")),
        ("decimal", "1 234.5", Decimal("1234.5")),
        ("decimal", "1'234.5", Decimal("1234.5")),
        ("decimal", "1\u00a0234.5", Decimal("1234.5")),
        ("decimal", "-3.25", Decimal("-3.25")),
        ("decimal", "12.50-", Decimal("-12.50")),
        ("decimal", 7, Decimal(7)),
        ("decimal", 0.1, Decimal("0.1")),
        ("decimal", Decimal("2.5"), Decimal("2.5")),
        ({"decimal": "."}, "1,000.25", Decimal("1000.25")),
        ({"decimal": ","}, "1.234,50", Decimal("1234.50")),
        ({"decimal": ","}, "12,5", Decimal("12.5")),
        ({"decimal": ","}, "12,50-", Decimal("-12.50")),
        ({"decimal": ","}, "1.000.000", Decimal("1000000")),
        ({"decimal": ","}, "-0,5", Decimal("-0.5")),
        ("integer", "42", 42),
        ("integer", "42.0", 42),
        ("integer", "1,000", 1000),
        ({"round": 2}, "1.005", Decimal("1.01")),
        ({"round": 2}, "2.344", Decimal("2.34")),
        ({"round": 0}, "2.5", Decimal("3")),
        ({"round": 0}, "-2.5", Decimal("-3")),
        ({"round": 3}, 1, Decimal("1.000")),
        ({"multiply": 100}, "12.34", Decimal("1234")),
        ({"multiply": "0.5"}, "3", Decimal("1.5")),
        ({"divide": 100}, "1234", Decimal("12.34")),
        ({"divide": 8}, "1", Decimal("0.125")),
        ({"format_decimal": 2}, "1.5", "1.50"),
        ({"format_decimal": 2}, "2.345", "2.35"),
        ({"format_decimal": 0}, "1E+3", "1000"),
        ({"format_decimal": 3}, Decimal("-0.0005"), "-0.001"),
    ],
)
def test_number_transforms(spec: str | dict[str, Any], value: Any, expected: Any) -> None:
    result = apply(spec, value)
    assert result == expected
    assert type(result) is type(expected)


def test_round_keeps_the_requested_places() -> None:
    assert str(apply({"round": 2}, "3")) == "3.00"


def test_multiply_and_divide_parse_with_the_default_separator() -> None:
    # '.' is the decimal separator, so ',' is a thousands separator here.
    assert apply({"divide": 100}, "1,000") == Decimal(10)


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ("decimal", "abc"),
        ("decimal", "12.5.3"),
        ("decimal", "-"),
        ("decimal", True),
        ({"decimal": ","}, "1,2,3"),
        ("integer", "x"),
        ({"round": 2}, "n/a"),
        ({"multiply": 2}, "two"),
        ({"format_decimal": 2}, "?"),
    ],
)
def test_numbers_that_are_not_numbers_raise_value_error(
    spec: str | dict[str, Any], value: Any
) -> None:
    _, fn = build_transform(spec)
    with pytest.raises(ValueError, match="not a number"):
        fn(value)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"boolean": ["J", "ja", "x"]}, "J", True),
        ({"boolean": ["J", "ja", "x"]}, " ja ", True),
        ({"boolean": ["J", "ja", "x"]}, "X", True),
        ({"boolean": ["J", "ja", "x"]}, "N", False),
        ({"boolean": ["J", "ja", "x"]}, "nein", False),
        ({"boolean": [1, True]}, 1, True),
        ({"boolean": [1, True]}, True, True),
        ({"boolean": [1, True]}, 0, False),
        # Without a list the value passes unchanged; the entity's boolean type reads it.
        ("boolean", "yes", "yes"),
    ],
)
def test_boolean(spec: str | dict[str, Any], value: Any, expected: Any) -> None:
    assert apply(spec, value) == expected


class TestDates:
    def test_date_with_a_format(self) -> None:
        assert apply({"date": "%d.%m.%Y"}, "31.12.2024") == date(2024, 12, 31)
        assert apply({"date": "%Y%m%d"}, " 20240229 ") == date(2024, 2, 29)

    def test_date_passes_date_values_and_cuts_datetimes(self) -> None:
        assert apply({"date": "%d.%m.%Y"}, date(2024, 1, 2)) == date(2024, 1, 2)
        assert apply({"date": "%d.%m.%Y"}, datetime(2024, 1, 2, 23, 59)) == date(2024, 1, 2)

    def test_date_that_does_not_match_the_format(self) -> None:
        _, fn = build_transform({"date": "%d.%m.%Y"})
        with pytest.raises(ValueError, match=r"'2024-12-31' does not match the date format"):
            fn("2024-12-31")
        with pytest.raises(ValueError, match="does not match"):
            fn("31.02.2024")

    def test_date_with_a_time_zone_takes_the_date_there(self) -> None:
        spec = {"date": {"format": "%Y-%m-%dT%H:%M%z", "timezone": "Europe/Berlin"}}
        # 23:30 UTC on New Year's Eve is already 2025 in Berlin.
        assert apply(spec, "2024-12-31T23:30+0000") == date(2025, 1, 1)
        assert apply({"date": "%Y-%m-%dT%H:%M%z"}, "2024-12-31T23:30+0000") == date(2024, 12, 31)

    def test_datetime_without_zone_is_utc(self) -> None:
        result = apply({"datetime": "%d.%m.%Y %H:%M"}, "31.12.2024 23:30")
        assert result == datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
        assert result.utcoffset() == timedelta(0)

    def test_datetime_in_a_time_zone(self) -> None:
        spec = {"datetime": {"format": "%d.%m.%Y %H:%M", "timezone": "Europe/Berlin"}}
        winter = apply(spec, "15.01.2024 12:00")
        summer = apply(spec, "15.07.2024 12:00")
        assert winter.astimezone(UTC) == datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
        assert summer.astimezone(UTC) == datetime(2024, 7, 15, 10, 0, tzinfo=UTC)

    def test_datetime_keeps_an_offset_the_format_reads(self) -> None:
        spec = {"datetime": {"format": "%Y-%m-%d %H:%M %z", "timezone": "Europe/Berlin"}}
        result = apply(spec, "2024-07-15 12:00 -0500")
        assert result.astimezone(UTC) == datetime(2024, 7, 15, 17, 0, tzinfo=UTC)

    def test_datetime_passes_datetime_values(self) -> None:
        naive = datetime(2024, 3, 1, 8, 0)
        assert apply({"datetime": "%Y"}, naive) == naive.replace(tzinfo=UTC)

    def test_datetime_that_does_not_match(self) -> None:
        _, fn = build_transform({"datetime": "%d.%m.%Y %H:%M"})
        with pytest.raises(ValueError, match="does not match the format"):
            fn("2024-12-31 10:00")

    def test_local_time_attaches_the_zone_to_naive_times(self) -> None:
        result = apply({"local_time": "Europe/Berlin"}, "2024-07-01T12:00:00")
        assert result.tzinfo == BERLIN
        assert result.astimezone(UTC) == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
        naive = datetime(2024, 1, 1, 12, 0)
        assert apply({"local_time": "Europe/Berlin"}, naive).astimezone(UTC).hour == 11

    def test_local_time_leaves_aware_times_alone(self) -> None:
        result = apply({"local_time": "Europe/Berlin"}, "2024-07-01T12:00:00+00:00")
        assert result == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)

    def test_local_time_rejects_text_that_is_not_iso(self) -> None:
        _, fn = build_transform({"local_time": "Europe/Berlin"})
        with pytest.raises(ValueError):
            fn("01.07.2024 12:00")

    def test_unix_time(self) -> None:
        assert apply("unix_time", "1700000000") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        assert apply("unix_time", 0) == datetime(1970, 1, 1, tzinfo=UTC)
        assert apply("unix_time", "1700000000.5").microsecond == 500000

    def test_format_date(self) -> None:
        assert apply({"format_date": "%d.%m.%Y"}, "2024-12-31") == "31.12.2024"
        assert apply({"format_date": "%Y%m%d"}, date(2024, 1, 2)) == "20240102"
        assert apply({"format_date": "%Y%m%d"}, "2024-12-31T10:00:00Z") == "20241231"
        assert apply({"format_date": "%H:%M"}, datetime(2024, 1, 1, 8, 5)) == "08:05"

    def test_format_date_in_a_time_zone(self) -> None:
        spec = {"format_date": {"format": "%d.%m.%Y %H:%M", "timezone": "Europe/Berlin"}}
        assert apply(spec, "2024-12-31T23:30:00Z") == "01.01.2025 00:30"
        # Naive date-times are UTC, as everywhere in the hub; plain dates have no zone.
        assert apply(spec, "2024-07-01T10:00:00") == "01.07.2024 12:00"
        assert apply({"format_date": {"format": "%d.%m.%Y", "timezone": "UTC"}}, "2024-07-01") == (
            "01.07.2024"
        )

    def test_format_date_of_a_non_date(self) -> None:
        _, fn = build_transform({"format_date": "%d.%m.%Y"})
        with pytest.raises(ValueError):
            fn("yesterday")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cents", "unknown transform 'cents'"),
        ({"cents": 2}, "unknown transform 'cents'"),
        ({"trim": True}, "transform 'trim': takes no argument"),
        ({"upper": "x"}, "transform 'upper': takes no argument"),
        ({"unix_time": 1000}, "transform 'unix_time': takes no argument"),
        ({"trim": None, "upper": None}, "a transform is a name or a mapping of one name"),
        ({}, "a transform is a name or a mapping of one name"),
        ({"decimal": ";"}, "transform 'decimal': the argument is the decimal separator"),
        ({"round": 13}, "transform 'round': the argument is the number of decimal places"),
        ({"round": -1}, "the number of decimal places"),
        ({"round": "2"}, "the number of decimal places"),
        ({"round": True}, "the number of decimal places"),
        ("round", "the number of decimal places"),
        ({"format_decimal": 1.5}, "transform 'format_decimal': the argument is the number"),
        ({"multiply": "x"}, "transform 'multiply': the argument must be a number"),
        ({"divide": 0}, "transform 'divide': cannot divide by zero"),
        ({"zfill": 0}, "transform 'zfill': the argument is the width"),
        ({"zfill": "6"}, "the argument is the width"),
        ({"prefix": 3}, "transform 'prefix': prefix takes a text argument"),
        ({"suffix": None}, "suffix takes a text argument"),
        ({"split": None}, "split takes a text argument"),
        ({"replace": "x"}, "transform 'replace': the argument is [old, new]"),
        ({"replace": ["a"]}, "the argument is [old, new]"),
        ({"replace": ["a", 1]}, "the argument is [old, new]"),
        ({"regex": "("}, "transform 'regex': bad regular expression"),
        ({"regex": 5}, "the argument is a regular expression"),
        ({"boolean": "J"}, "transform 'boolean': the argument is the list of values"),
        ("date", "transform 'date': date needs a format"),
        ({"datetime": 5}, "datetime needs a format"),
        ({"datetime": {"timezone": "UTC"}}, "datetime needs a format"),
        ({"datetime": {"format": "%Y", "zone": "UTC"}}, "unknown option(s) zone"),
        ({"datetime": {"format": "%Y", "timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"date": {"format": "%Y", "timezone": "Nowhere"}}, "unknown time zone 'Nowhere'"),
        ({"local_time": "Atlantis/Capital"}, "transform 'local_time': unknown time zone"),
        ("format_date", "format_date needs a format"),
    ],
)
def test_bad_transform_specs_fail_at_build_time(spec: Any, message: str) -> None:
    assert message in build_error(spec)


def test_every_transform_is_covered() -> None:
    # A new transform must be added to the tests above (and to the README table).
    assert set(TRANSFORMS) == {
        "trim",
        "upper",
        "lower",
        "title",
        "capitalize",
        "collapse_spaces",
        "string",
        "strip_leading_zeros",
        "zfill",
        "prefix",
        "suffix",
        "replace",
        "regex",
        "split",
        "decimal",
        "integer",
        "round",
        "multiply",
        "divide",
        "boolean",
        "date",
        "datetime",
        "local_time",
        "unix_time",
        "format_date",
        "format_decimal",
    }


def test_integer_rounds_half_up_like_round() -> None:
    from erpbridge.mapping.transforms import build_transform

    integer = build_transform("integer")[1]
    assert (integer("12.5"), integer("-12.5"), integer("12.4")) == (13, -13, 12)
