"""Unit and currency conversion for the mapping language."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

__all__ = ["UNITS", "convert_currency", "unit_factor"]

# unit → (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, Decimal]] = {
    "mg": ("mass", Decimal("0.000001")),
    "g": ("mass", Decimal("0.001")),
    "kg": ("mass", Decimal(1)),
    "t": ("mass", Decimal(1000)),
    "lb": ("mass", Decimal("0.45359237")),
    "oz": ("mass", Decimal("0.028349523125")),
    "mm": ("length", Decimal("0.001")),
    "cm": ("length", Decimal("0.01")),
    "m": ("length", Decimal(1)),
    "km": ("length", Decimal(1000)),
    "in": ("length", Decimal("0.0254")),
    "ft": ("length", Decimal("0.3048")),
    "yd": ("length", Decimal("0.9144")),
    "mi": ("length", Decimal("1609.344")),
    "ml": ("volume", Decimal("0.001")),
    "cl": ("volume", Decimal("0.01")),
    "l": ("volume", Decimal(1)),
    "m3": ("volume", Decimal(1000)),
    "gal": ("volume", Decimal("3.785411784")),
    "pcs": ("count", Decimal(1)),
    "ea": ("count", Decimal(1)),
    "dozen": ("count", Decimal(12)),
    "s": ("time", Decimal(1)),
    "min": ("time", Decimal(60)),
    "h": ("time", Decimal(3600)),
}
_ALIASES = {
    "pc": "pcs",
    "st": "pcs",
    "stk": "pcs",
    "each": "ea",
    "kgm": "kg",
    "grm": "g",
    "ltr": "l",
    "pce": "pcs",
    "c62": "pcs",
    "mtr": "m",
    "hur": "h",
    "lbs": "lb",
}


def _unit(name: str) -> tuple[str, Decimal]:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in UNITS:
        raise ValueError(f"unknown unit {name!r}")
    return UNITS[key]


def unit_factor(source: str, target: str) -> Decimal:
    """The factor turning a quantity in ``source`` units into ``target`` units."""
    source_dim, source_factor = _unit(source)
    target_dim, target_factor = _unit(target)
    if source_dim != target_dim:
        raise ValueError(f"cannot convert {source} ({source_dim}) to {target} ({target_dim})")
    return source_factor / target_factor


def convert_currency(
    amount: Decimal, source: str, target: str, base: str, rates: Mapping[str, Decimal]
) -> Decimal:
    """Convert with rates quoted as ``1 base = rate × currency``."""
    if source == target:
        return amount

    def rate(currency: str) -> Decimal:
        if currency == base:
            return Decimal(1)
        if currency not in rates:
            raise ValueError(f"no exchange rate for {currency!r} (currency_rates)")
        return rates[currency]

    return amount / rate(source) * rate(target)
