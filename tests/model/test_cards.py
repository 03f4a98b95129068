"""A flow's card_numbers policy: reject by default, mask where configured, keys always reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from erpbridge.config.loader import parse_config
from erpbridge.errors import ConfigError, DataError
from erpbridge.mapping.compiler import compile_mapping, compile_outbound
from erpbridge.mapping.spec import FieldMapping, MappingSpec
from erpbridge.model.entities import BUILTIN_ENTITIES

CUSTOMER = BUILTIN_ENTITIES["customer"]
TOKEN = BUILTIN_ENTITIES["payment_token"]
CARD = "4111 1111 1111 1111"


def _customer(**fields: object) -> dict[str, object]:
    return {"code": "C-1", "name": "Muster GmbH", **fields}


@pytest.mark.parametrize(
    ("record", "path"),
    [
        (_customer(name=f"Muster {CARD}"), "name"),
        (_customer(lock_reason=f"card {CARD.replace(' ', '.')}"), "lock_reason"),
        (_customer(addresses=[{"street": "Weg 1"}, {"street": CARD.replace(" ", "/")}]),
         "addresses[1].street"),
        (_customer(code="4111111111111111"), "code"),
        (_customer(phone="４１１１１１１１１１１１１１１１"), "phone"),
    ],
)  # fmt: skip
def test_any_field_rejects_by_default(record: dict[str, object], path: str) -> None:
    mapping = compile_mapping(None, CUSTOMER)
    with pytest.raises(DataError) as caught:
        mapping(record)
    assert caught.value.path == path
    assert "card number" in caught.value.reason and "4111" not in str(caught.value)


def test_mask_keeps_first_six_and_last_four_where_configured() -> None:
    mapping = compile_mapping(None, CUSTOMER, cards={"lock_reason": "mask", "addresses": "mask"})
    payload = mapping(
        _customer(
            lock_reason=f"paid with {CARD}",
            addresses=[{"street": "4111-1111-1111-1111 Weg"}],
        )
    )
    assert payload["lock_reason"] == "paid with 411111******1111"
    assert payload["addresses"] == [{"type": "other", "street": "411111******1111 Weg"}]
    with pytest.raises(DataError) as caught:  # "*" was not set: the other fields reject
        mapping(_customer(name=CARD))
    assert caught.value.path == "name"


def test_mask_everywhere_but_the_key() -> None:
    mapping = compile_mapping(None, CUSTOMER, cards="mask")
    assert mapping(_customer(name=f"x {CARD}"))["name"] == "x 411111******1111"
    with pytest.raises(DataError, match="business key"):
        mapping(_customer(code=CARD))


def test_guarded_fields_reject_whatever_the_policy() -> None:
    mapping = compile_mapping(None, TOKEN, cards="mask")
    with pytest.raises(DataError) as caught:
        mapping({"token": "4111.1111.1111.1111", "customer_code": "C-1"})
    assert caught.value.path == "token" and "4111" not in str(caught.value)


def test_out_mapping_rejects_or_masks_what_it_writes() -> None:
    # A template can put two harmless fields together into a card number.
    spec: MappingSpec = {"Text": FieldMapping(template="{a}{b}")}
    with pytest.raises(DataError) as caught:
        compile_outbound(spec)({"a": "41111111", "b": "11111111"})
    assert caught.value.path == "Text"
    masked = compile_outbound(spec, cards="mask")({"a": "41111111", "b": "11111111"})
    assert masked == {"Text": "411111******1111"}
    assert compile_outbound(None)({"x": "ok"}) == {"x": "ok"}


def test_records_without_numbers_are_returned_as_they_are() -> None:
    mapping = compile_mapping(None, CUSTOMER)
    record = _customer(updated_at="2024-03-04T10:15:00Z", phone="+49 1701 2345 6789")
    assert mapping(record)["phone"] == "+49 1701 2345 6789"


CONFIG = """
channels:
  shop: {system: platform}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    card_numbers: {SETTING}
"""


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{nickname: mask}", "'nickname' is not a field of the entity"),
        ("{code: mask}", "always rejects"),
        ("{'*': hide}", "card_numbers"),
    ],
)
def test_bad_policies_are_config_errors(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace("{SETTING}", setting), tmp_path / "erpbridge.yaml")
    assert message in str(caught.value) and "card_numbers" in str(caught.value)


def test_policy_from_the_configuration(tmp_path: Path) -> None:
    config = parse_config(
        CONFIG.replace("{SETTING}", "{'*': mask, name: reject}"), tmp_path / "erpbridge.yaml"
    )
    mapping = config.mappings["customers-in"]
    assert mapping(_customer(lock_reason=CARD))["lock_reason"] == "411111******1111"
    with pytest.raises(DataError):
        mapping(_customer(name=CARD))
