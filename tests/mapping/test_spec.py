"""What a flow's ``mapping:`` block may say, checked by the models before compiling."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from erpbridge.mapping import CurrencyConversion, FieldMapping, UnitConversion


def invalid(model: Any, data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value)


def test_from_is_the_yaml_spelling() -> None:
    entry = FieldMapping.model_validate({"from": "a.b", "required": True})
    assert entry.from_ == "a.b"
    assert entry.required
    assert entry.transforms == []


@pytest.mark.parametrize(
    "data",
    [
        {"from": "a", "template": "{b}"},
        {"from": "a", "value": 1},
        {"template": "{a}", "each": "x", "fields": {"a": "b"}},
    ],
)
def test_only_one_source(data: dict[str, Any]) -> None:
    assert "give only one of" in invalid(FieldMapping, data)


def test_some_source_is_needed() -> None:
    message = invalid(FieldMapping, {"transforms": ["trim"]})
    assert (
        "give one of 'from', 'template', 'value', 'each', 'items', 'fields' or 'default'" in message
    )


def test_each_needs_fields() -> None:
    assert "'each' needs 'fields'" in invalid(FieldMapping, {"each": "lines"})


def test_unknown_keys_are_refused() -> None:
    assert "extra" in invalid(FieldMapping, {"from": "a", "tranforms": ["trim"]})


def test_round_is_bounded() -> None:
    assert FieldMapping.model_validate({"from": "a", "round": 2}).round == 2
    invalid(FieldMapping, {"from": "a", "round": 13})


def test_map_keys_may_be_numbers_and_booleans() -> None:
    entry = FieldMapping.model_validate({"from": "a", "map": {7: "seven", True: "yes", "x": None}})
    assert entry.map == {7: "seven", True: "yes", "x": None}


@pytest.mark.parametrize("model", [UnitConversion, CurrencyConversion])
def test_conversions_need_exactly_one_source(model: Any) -> None:
    assert "exactly one of 'from' and 'from_path'" in invalid(model, {"to": "kg"})
    assert "exactly one of" in invalid(model, {"from": "g", "from_path": "u", "to": "kg"})
    assert model.model_validate({"from_path": "u", "to": "x"}).from_path == "u"
    assert "Field required" in invalid(model, {"from": "g"})
