"""Unit factors and currency conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest

from erpbridge.mapping.units import UNITS, convert_currency, unit_factor


@pytest.mark.parametrize(
    ("source", "target", "factor"),
    [
        ("g", "kg", Decimal("0.001")),
        ("kg", "g", Decimal(1000)),
        ("t", "kg", Decimal(1000)),
        ("mg", "g", Decimal("0.001")),
        ("lb", "kg", Decimal("0.45359237")),
        ("oz", "lb", Decimal("0.0625")),
        ("in", "cm", Decimal("2.54")),
        ("ft", "in", Decimal(12)),
        ("yd", "ft", Decimal(3)),
        ("mi", "km", Decimal("1.609344")),
        ("ml", "l", Decimal("0.001")),
        ("m3", "l", Decimal(1000)),
        ("cl", "ml", Decimal(10)),
        ("dozen", "pcs", Decimal(12)),
        ("ea", "pcs", Decimal(1)),
        ("h", "min", Decimal(60)),
        ("min", "s", Decimal(60)),
        ("kg", "kg", Decimal(1)),
    ],
)
def test_factors(source: str, target: str, factor: Decimal) -> None:
    assert unit_factor(source, target) == factor


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("KGM", "kg"),
        ("GRM", "g"),
        ("LTR", "l"),
        ("MTR", "m"),
        ("HUR", "h"),
        ("PCE", "pcs"),
        ("C62", "pcs"),
        ("ST", "pcs"),
        ("Stk", "pcs"),
        ("PC", "pcs"),
        ("EACH", "ea"),
        ("LBS", "lb"),
        (" Kg ", "kg"),
    ],
)
def test_erp_codes_and_case(code: str, canonical: str) -> None:
    assert unit_factor(code, canonical) == 1


def test_every_unit_converts_to_itself() -> None:
    for unit in UNITS:
        assert unit_factor(unit, unit) == 1


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match="unknown unit 'furlong'"):
        unit_factor("furlong", "m")
    with pytest.raises(ValueError, match="unknown unit 'parsec'"):
        unit_factor("m", "parsec")


def test_different_dimensions_do_not_convert() -> None:
    with pytest.raises(ValueError, match=r"cannot convert kg \(mass\) to m \(length\)"):
        unit_factor("kg", "m")


RATES = {"USD": Decimal("1.10"), "CHF": Decimal("0.95")}


@pytest.mark.parametrize(
    ("amount", "source", "target", "expected"),
    [
        ("110", "USD", "EUR", Decimal(100)),
        ("100", "EUR", "USD", Decimal(110)),
        ("95", "CHF", "USD", Decimal(110)),
        ("42", "USD", "USD", Decimal(42)),
        ("42", "GBP", "GBP", Decimal(42)),
    ],
)
def test_currency(amount: str, source: str, target: str, expected: Decimal) -> None:
    assert convert_currency(Decimal(amount), source, target, "EUR", RATES) == expected


def test_currency_without_a_rate() -> None:
    with pytest.raises(ValueError, match="no exchange rate for 'GBP'"):
        convert_currency(Decimal(1), "GBP", "EUR", "EUR", RATES)
