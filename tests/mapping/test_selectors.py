"""Path selectors: ``name[field=value]`` picks a list item by a qualifier, as IDoc segments
(``E1EDKA1[PARVW=AG]``) and OData text lists (``to_Description[Language=EN]``) need."""

from __future__ import annotations

from typing import Any

import pytest

from erpbridge.mapping.compiler import compile_mapping, compile_outbound
from erpbridge.mapping.paths import getter
from erpbridge.mapping.spec import FieldMapping
from erpbridge.model.entities import BUILTIN_ENTITIES

IDOC: dict[str, Any] = {
    "E1EDK01": {"BELNR": "4711", "CURCY": "EUR"},
    "E1EDKA1": [
        {"PARVW": "AG", "PARTN": "0001000002"},
        {"PARVW": "WE", "PARTN": "0001000009", "ORT01": "Wien"},
        {"PARVW": "WE", "PARTN": "0001000010", "ORT01": "Linz"},
    ],
    "E1EDP01": [
        {
            "POSEX": "10",
            "E1EDP19": [{"QUALF": "001", "IDTNR": "C-1"}, {"QUALF": "002", "IDTNR": "TG11"}],
        },
    ],
}


def test_a_selector_picks_the_first_matching_item() -> None:
    assert getter("E1EDKA1[PARVW=AG].PARTN")(IDOC) == "0001000002"
    assert getter("E1EDKA1[PARVW=WE].ORT01")(IDOC) == "Wien"  # the first of two
    assert getter("E1EDKA1[PARVW=WE]")(IDOC) == IDOC["E1EDKA1"][1]


def test_no_match_or_no_list_is_missing() -> None:
    assert getter("E1EDKA1[PARVW=RE].PARTN")(IDOC) is None
    assert getter("E1EDK02[QUALF=001].BELNR")(IDOC) is None
    assert getter("E1EDK01[CURCY=EUR].BELNR")(IDOC) == "4711"  # one object counts as a list of one
    assert getter("E1EDK01.BELNR[X=1]")(IDOC) is None  # a text is no list


def test_selectors_nest_and_mix_with_indexes() -> None:
    assert getter("E1EDP01.0.E1EDP19[QUALF=002].IDTNR")(IDOC) == "TG11"
    assert getter("E1EDP01[POSEX=10].E1EDP19.0.IDTNR")(IDOC) == "C-1"


def test_values_compare_as_text_and_may_contain_dots() -> None:
    data = {"rows": [{"n": 2, "v": "two"}, {"n": "1.5", "v": "one and a half"}, {"ok": True}]}
    assert getter("rows[n=2].v")(data) == "two"
    assert getter("rows[n=1.5].v")(data) == "one and a half"
    assert getter("rows[ok=true]")(data) == {"ok": True}
    assert getter("rows[missing=].v")(data) == "two"  # an absent field is empty


def test_a_literal_key_wins_over_a_selector() -> None:
    data = {"Price[cur=EUR]": "12.50", "Price": [{"cur": "EUR", "amount": "9"}]}
    assert getter("Price[cur=EUR]")(data) == "12.50"
    assert getter("Price[cur=EUR].amount")(data) is None  # the literal key holds a text


def test_a_malformed_selector_is_an_ordinary_key() -> None:
    assert getter("E1EDKA1[PARVW].PARTN")(IDOC) is None
    assert getter("E1EDKA1[PARVW=AG")(IDOC) is None


def test_mappings_use_selectors_and_demand_no_top_level_field_for_them() -> None:
    spec: dict[str, str | FieldMapping] = {
        "number": "E1EDK01.BELNR",
        "customer_code": FieldMapping.model_validate(
            {"from": "E1EDKA1[PARVW=AG].PARTN", "transforms": ["strip_leading_zeros"]}
        ),
        "po_number": "E1EDK02[QUALF=001]",
    }
    mapping = compile_mapping(spec, BUILTIN_ENTITIES["order"])
    assert mapping.required_fields == frozenset()
    payload = mapping(IDOC)
    assert (payload["number"], payload["customer_code"]) == ("4711", "1000002")
    assert "po_number" not in payload


@pytest.mark.parametrize("path", ["lines[sku=A].quantity", "lines.0.quantity"])
def test_outbound_mappings_read_with_selectors_too(path: str) -> None:
    mapping = compile_outbound({"MENGE": path})
    assert mapping({"lines": [{"sku": "A", "quantity": "2"}]}) == {"MENGE": "2"}
