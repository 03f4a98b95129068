"""The card-number scanner: every way a card number is written is found; ordinary data is not."""

from __future__ import annotations

import logging

import pytest

from erpbridge.errors import DataError, FatalError
from erpbridge.pci import (
    CARD_NUMBER_REMOVED,
    find_card_numbers,
    has_card_number,
    install_log_redaction,
    mask_card_numbers,
    redact_card_numbers,
    scrub_card_numbers,
)

FULL_WIDTH = str.maketrans("0123456789 ", "０１２３４５６７８９\u3000")

SEPARATED = {
    "dots": "4111.1111.1111.1111",
    "slashes": "4111/1111/1111/1111",
    "underscores": "4111_1111_1111_1111",
    "tabs": "4111\t1111\t1111\t1111",
    "nbsp": "4111\u00a01111\u00a01111\u00a01111",
    "narrow nbsp": "4111\u202f1111\u202f1111\u202f1111",
    "double spaces": "4111  1111  1111  1111",
    "spaced dash": "4111 - 1111 - 1111 - 1111",
    "en dash": "4111–1111–1111–1111",
    "mixed": "4111. 1111/1111 _1111",
    "full-width": "4111111111111111".translate(FULL_WIDTH),
    "full-width grouped": "4111 1111 1111 1111".translate(FULL_WIDTH),
    "arabic-indic": "٤١١١١١١١١١١١١١١١",
    "amex 4-6-5 dots": "3782.822463.10005",
    "19 digits": "6011 0009 9013 9424 124",
}


@pytest.mark.parametrize("text", SEPARATED.values(), ids=SEPARATED.keys())
def test_every_separator_and_digit_form_is_found(text: str) -> None:
    assert has_card_number(text)
    assert has_card_number(f"Notes: please charge {text} tomorrow")


@pytest.mark.parametrize("text", SEPARATED.values(), ids=SEPARATED.keys())
def test_masked_and_redacted_forms_hold_no_number(text: str) -> None:
    masked = mask_card_numbers(f"card {text} ok")
    assert masked.startswith("card ") and masked.endswith(" ok")
    assert not has_card_number(masked)
    assert "1111111111" not in masked and "1111 1111" not in masked
    redacted = redact_card_numbers(f"card {text} ok")
    assert redacted == f"card {CARD_NUMBER_REMOVED} ok"


def test_mask_keeps_first_six_and_last_four() -> None:
    assert mask_card_numbers("4111.1111.1111.1111") == "411111******1111"
    assert mask_card_numbers("3782 822463 10005") == "378282*****0005"
    assert mask_card_numbers("４１１１１１１１１１１１１１１１") == "411111******1111"
    [found] = find_card_numbers("pay 5555 5555 5555 4444 now")
    assert (found.start, found.end, found.digits) == (4, 23, "5555555555554444")


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-04 10:15:00",
        "2024-03-04T10:15:00.123456Z",
        "20240304101500",  # a compact timestamp that happens to pass Luhn
        "+49 1701 2345 6789",  # a phone number that passes Luhn
        "+1 (415) 555-0132",
        "DE89 3704 0044 0532 0130 00",  # IBAN
        "DE89370400440532013000",
        "GB29 NWBK 6016 1331 9268 19",
        "4006381333931",  # EAN-13 barcode that passes Luhn
        "12.50 / 13.75 / 100.00 / 55.20 / 19.99",  # amounts
        "order 12345, line 10, qty 3, 2024-01-01",
        "41111111111111111111",  # 20 digits: a longer number, not a card
        "SO-0000012345-000",
        "4111111111111112",  # Luhn fails
        "973654095.7875",  # a decimal whose 13 digits pass Luhn
        "4222222222222.50",  # the whole part of a decimal passes Luhn
        "0.4222222222222",  # and the fraction part
        "-973654095.7875",
        "1733558400003",  # Unix time in milliseconds that passes Luhn
    ],
)
def test_ordinary_data_is_not_a_card_number(text: str) -> None:
    assert not has_card_number(text)
    assert mask_card_numbers(text) == text


def test_messages_never_echo_a_number() -> None:
    error = DataError("notes", "'4111.1111.1111.1111' does not match '[A-Z]+'")
    assert "4111" not in str(error) and "4111" not in error.reason
    assert CARD_NUMBER_REMOVED in error.reason
    assert "4111" not in str(FatalError("upstream said: card 4111 1111 1111 1111 declined"))
    assert "4111" not in DataError("4111111111111111", "unknown field").path


def test_scrub_replaces_whole_strings_and_keys() -> None:
    data = {"a": "x 4111_1111_1111_1111", "4111111111111111": [1, "ok"], "n": 3}
    assert scrub_card_numbers(data) == {
        "a": CARD_NUMBER_REMOVED,
        CARD_NUMBER_REMOVED: [1, "ok"],
        "n": 3,
    }


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    before = logging.getLogRecordFactory()
    install_log_redaction()
    install_log_redaction()  # idempotent
    try:
        log = logging.getLogger("erpbridge.test")
        with caplog.at_level(logging.INFO):
            log.info("got %s from %s", "4111 1111 1111 1111", "shop")
            try:
                raise ValueError("bad 4111-1111-1111-1111")
            except ValueError:
                log.exception("failed")
        text = caplog.text
        assert "got [card number removed] from shop" in text
        assert "4111" not in text and "failed" in text
    finally:
        logging.setLogRecordFactory(before)


def test_scan_of_ordinary_text_is_fast() -> None:
    import time

    texts = ["Müller GmbH, Hauptstraße 12, 80331 München", "2024-03-04T10:15:00Z", "C-1"] * 10_000
    start = time.perf_counter()
    assert not any(has_card_number(t) for t in texts)
    # About 1 µs each here; the bound only catches a regression to a slow path (10x).
    assert time.perf_counter() - start < 0.5
