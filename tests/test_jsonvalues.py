"""The one way the hub writes values JSON lacks (``erpbridge.jsonvalues``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson
import pytest

from erpbridge.jsonvalues import as_json, json_default


def test_values_json_lacks_are_written_one_way() -> None:
    data = {
        "price": Decimal("19.990"),
        "tags": frozenset({"a"}),
        "raw": b"\x00\xff",
        "d": date(2024, 1, 2),
    }
    assert as_json(data) == {"price": "19.990", "tags": ["a"], "raw": "00ff", "d": "2024-01-02"}
    assert orjson.loads(orjson.dumps([Decimal("1e-30")], default=json_default)) == ["1E-30"]


def test_anything_else_is_a_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match="complex"):
        as_json({"z": 1j})
