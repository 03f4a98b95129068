"""The condition form of guards and triggers: what it accepts, how it compares, what it refuses."""

from __future__ import annotations

import pytest

from erpbridge.model.fields import FieldSpec
from erpbridge.workflows.conditions import ConditionError, compile_condition

FIELDS = {
    "amount": FieldSpec(type="decimal"),
    "status": FieldSpec(choices=("open", "approved")),
    "country": FieldSpec(),
    "dealer": FieldSpec.model_validate({"type": "object", "fields": {"country": "string"}}),
}


@pytest.mark.parametrize(
    ("text", "payload", "expected"),
    [
        ("amount > 100", {"amount": "100.50"}, True),  # decimal text against a number
        ("amount > 100", {"amount": "99"}, False),
        ("amount > 100", {}, False),  # null does not order
        ("amount <= 5000 and status == 'approved'", {"amount": 5000, "status": "approved"}, True),
        ("country in ['DE', 'AT']", {"country": "AT"}, True),
        ("country not in ('DE', 'AT')", {"country": "FR"}, True),
        ("dealer.country == 'DE'", {"dealer": {"country": "DE"}}, True),
        ("dealer.country == 'DE'", {"dealer": "DE"}, False),
        ("country is null", {}, True),
        ("country != null", {"country": "DE"}, True),
        ("not (amount > 1 or country == 'DE')", {"amount": "0"}, True),
        ("0 < amount < 10", {"amount": "5"}, True),
        ("amount == -1", {"amount": "-1.0"}, True),
        ("amount == 'abc'", {"amount": 1}, False),
    ],
)
def test_evaluates(text: str, payload: dict[str, object], expected: bool) -> None:
    assert compile_condition(text, FIELDS)(payload) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("amount.__class__ == 1", "'amount' is a decimal, it has no fields ('amount.__class__')"),
        ("''.__class__", "\"''.__class__\" is not allowed"),
        ("len(country) > 1", "'len(country)' is not allowed"),
        ("amount + 1 > 2", "'amount + 1' is not allowed"),
        ("country[0] == 'D'", "'country[0]' is not allowed"),
        ("lambda: 1", "'lambda: 1' is not allowed"),
        ("amont > 1", "unknown field 'amont' in 'amont'; did you mean 'amount'?"),
        ("status == 'aproved'", "'aproved' is not a choice of 'status'; did you mean 'approved'?"),
        ("country is 'DE'", "'is' and 'is not' only compare with null"),
        ("amount >", "not a valid condition (invalid syntax): 'amount >'"),
    ],
)
def test_refuses_at_load(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, FIELDS)
    assert message in str(info.value)


def test_explains_the_values_it_read() -> None:
    guard = compile_condition("amount <= 5000 and country == 'DE'", FIELDS)
    assert guard.explain({"amount": "7200"}) == "amount is '7200', country is null"
