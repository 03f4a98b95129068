"""The card-number scanner (PCI DSS): find payment card numbers (PANs) in any text.

Every string the hub stores or writes passes through here: canonical records (reject or mask,
see :mod:`erpbridge.model.cards`), rejections, error messages, run and delivery errors, logs,
idempotency answers and the files OUT flows write. It imports nothing from the package, so that
every layer (errors, model, store, engine, api) can use it.

The rule, in order:

1. **Digit groups.** A candidate is a run of digit groups joined by at most three separator
   characters each: space, tab, no-break and thin spaces, ideographic space, ``-`` ``–`` ``—``
   ``‐`` ``－``, ``.``, ``/``, ``_`` (so ``4111.1111.1111.1111``, ``4111 - 1111 - …``,
   ``4111\\t1111…`` are found). Any Unicode decimal digit counts (full-width ``４１１１…``, Arabic-
   Indic …), normalised to ASCII before the check.
2. **Windows.** Inside a run, every sequence of *whole* groups holding 13–19 digits is a window
   (a CVV or an expiry before or after the number does not hide it): one group, or three groups
   or more, each of 3 digits or more (cards are written whole or in groups of 4, 4-6-5 or
   4-4-4-4-3; ``12.50 / 13.75`` amounts and two-group decimals such as ``973654095.7875`` are
   not). A single group longer than 19 digits is a longer number (a serial, a bank reference),
   and a single group that is the whole or fraction part of a decimal number
   (``1234567890123.45``) is a number too: neither is part of a window.
3. **Luhn.** A window is a card number when its digits pass the Luhn checksum.
4. **Known look-alikes are left alone:** a run right after ``+`` (an international phone
   number), the digits of a valid IBAN (ISO 13616, mod 97), a 13-digit group that is a valid
   EAN-13/GTIN-13 barcode (13-digit cards are no longer issued) or starts with 1 (Unix time in
   milliseconds; no 13-digit card starts with 1), and a 14- or 17-digit group that reads as a
   timestamp ``yyyymmddHHMMSS[fff]``.

Limits: one random 13–19 digit number in ten passes Luhn, so a long account, phone or order
number written without ``+`` can be taken for a card number (rejected or masked; never stored in
full), zero-padded ones included (SAP's 16-digit IDoc and 18-digit material numbers). Digits
spelled out in words, split by letters or by more than three separator characters, or encoded
(base64, hex) are not found.

Speed: text shorter than 13 characters, or without 13 digit-like bytes in a row (one
``bytes.translate`` and one substring search, about 1 µs), returns at once; the regular
expressions, windows and Luhn only run on the rare candidates.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "CARD_NUMBER_REMOVED",
    "CardNumber",
    "find_card_numbers",
    "has_card_number",
    "install_log_redaction",
    "luhn_ok",
    "mask_card_numbers",
    "redact_card_numbers",
    "scrub_card_numbers",
]

#: What a stored or logged text holds where a card number was.
CARD_NUMBER_REMOVED = "[card number removed]"

_MIN, _MAX = 13, 19
_SEP = "[ \t\u00a0\u2007\u2009\u202f\u3000\\-\u2010\u2011\u2012\u2013\u2014\uff0d./_\uff0e\uff0f]"
# The cheap pre-check, in C: a card number needs 13 bytes in a row that are ASCII digits,
# separators or parts of a non-ASCII character (a Unicode digit or space). ``bytes.translate``
# marks those bytes "d" and a substring search looks for 13 of them; a regular expression over
# the same text costs 2-6 times more (measured on names, streets and ISO timestamps).
_MARKS = bytes(
    ord("d") if b >= 0x80 or chr(b) in "0123456789 \t-./_" else ord(" ") for b in range(256)
)
_NEEDLE = b"d" * _MIN


def _maybe(text: str) -> bool:
    return len(text) >= _MIN and _NEEDLE in text.encode("utf-8", "surrogatepass").translate(_MARKS)


#: A whole run of digit groups, and the groups inside it.
_RUN = re.compile(rf"\d+(?:{_SEP}{{1,3}}\d+)*")
_GROUP = re.compile(r"\d+")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ \u00a0]?[A-Z0-9]){11,30}")
_TIMESTAMP = re.compile(
    r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])[0-5]\d[0-5]\d"
    r"(?:\d{3})?"
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of payment card numbers (ASCII digits)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _ascii(digits: str) -> str:
    if digits.isascii():
        return digits
    return "".join(str(unicodedata.decimal(ch)) for ch in digits)


def _ean13_ok(digits: str) -> bool:
    total = sum((ord(ch) - 48) * (3 if i % 2 else 1) for i, ch in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == ord(digits[12]) - 48


def _decimal_part(text: str, group: tuple[int, int, str]) -> bool:
    """The group is the whole or the fraction part of a decimal number ("1234567890123.45")."""
    start, end, _ = group
    after = text[end : end + 2]
    before = text[max(start - 2, 0) : start]
    return (len(after) == 2 and after[0] in ".," and after[1].isdecimal()) or (
        len(before) == 2 and before[1] in ".," and before[0].isdecimal()
    )


def _look_alike(digits: str) -> bool:
    """A one-group number that is a barcode or a timestamp, not a card."""
    if len(digits) == _MIN and (_ean13_ok(digits) or digits[0] == "1"):
        # EAN-13; or Unix time in milliseconds (2001-2033): no 13-digit card starts with 1.
        return True
    return len(digits) in (14, 17) and _TIMESTAMP.fullmatch(digits) is not None


def _iban_end(match: re.Match[str]) -> int | None:
    """Where the valid IBAN starting at ``match`` ends (the longest that passes mod 97)."""
    chars = [(i, ch) for i, ch in enumerate(match.group(), match.start()) if ch.isalnum()]
    compact = "".join(ch for _, ch in chars)
    for length in range(len(compact), 14, -1):
        text = compact[4:length] + compact[:4]
        if int("".join(str(int(ch, 36)) for ch in text)) % 97 == 1:
            return chars[length - 1][0] + 1
    return None


def _without_ibans(text: str) -> str:
    """``text`` with each valid IBAN blanked out (same length, so positions hold)."""
    for match in _IBAN.finditer(text):
        end = _iban_end(match)
        if end is not None:
            text = text[: match.start()] + "X" * (end - match.start()) + text[end:]
    return text


class CardNumber:
    """One card number found in a text: where it is and its digits (ASCII)."""

    __slots__ = ("digits", "end", "start")

    def __init__(self, start: int, end: int, digits: str) -> None:
        self.start, self.end, self.digits = start, end, digits

    @property
    def masked(self) -> str:
        """First six and last four digits, the rest ``*`` (the most PCI DSS lets anyone see)."""
        return self.digits[:6] + "*" * (len(self.digits) - 10) + self.digits[-4:]


def _windows(text: str, start: int, end: int) -> Iterator[CardNumber]:
    """The card numbers in one run of digit groups ``text[start:end]``, left to right."""
    groups = [(m.start(), m.end(), _ascii(m.group())) for m in _GROUP.finditer(text, start, end)]
    i = 0
    while i < len(groups):
        first = groups[i][2]
        found: tuple[int, str] | None = None
        digits = ""
        for j in range(i, len(groups)):
            part = groups[j][2]
            # Several groups: each of 3 digits or more ("12.50 13.75" are amounts).
            if j > i and (len(first) < 3 or len(part) < 3):
                break
            digits += part
            if len(digits) > _MAX:
                break
            if len(digits) < _MIN or j == i + 1:
                continue  # two groups are a decimal number ("973654095.7875"), not a card
            if j == i and (_look_alike(digits) or _decimal_part(text, groups[i])):
                continue
            if luhn_ok(digits):
                found = (j, digits)  # go on: the longest window covers a 19-digit card
        if found is None:
            i += 1
            continue
        last, digits = found
        yield CardNumber(groups[i][0], groups[last][1], digits)
        i = last + 1


def find_card_numbers(text: str) -> list[CardNumber]:
    """Every card number in ``text`` (see the module's rule), left to right."""
    if not _maybe(text):
        return []
    work = _without_ibans(text)
    found: list[CardNumber] = []
    for run in _RUN.finditer(work):
        start, end = run.span()
        if end - start < _MIN:
            continue  # fewer characters than a card has digits
        if start > 0 and work[start - 1] == "+":
            continue  # an international phone number
        found.extend(_windows(work, start, end))
    return found


def has_card_number(text: str) -> bool:
    """True when ``text`` holds a card number; fast for the usual text that holds none."""
    if not _maybe(text):
        return False
    return bool(find_card_numbers(text))


def _replace(text: str, found: list[CardNumber], replacement: Any) -> str:
    parts: list[str] = []
    last = 0
    for number in found:
        parts.append(text[last : number.start])
        parts.append(replacement(number))
        last = number.end
    parts.append(text[last:])
    return "".join(parts)


def mask_card_numbers(text: str) -> str:
    """``text`` with each card number shown as its first six and last four digits only."""
    found = find_card_numbers(text)
    return _replace(text, found, lambda n: n.masked) if found else text


def redact_card_numbers(text: str) -> str:
    """``text`` with each card number replaced by :data:`CARD_NUMBER_REMOVED` (messages)."""
    found = find_card_numbers(text)
    return _replace(text, found, lambda _: CARD_NUMBER_REMOVED) if found else text


def scrub_card_numbers(value: Any) -> Any:
    """``value`` (JSON data) with every string that holds a card number replaced whole.

    Used wherever a copy of source data is kept (rejections): what a mapping refused must not
    be stored through the back door of the rejection's copy of the source record.
    """
    if isinstance(value, str):
        return CARD_NUMBER_REMOVED if has_card_number(value) else value
    if isinstance(value, dict):
        return {
            scrub_card_numbers(k) if isinstance(k, str) else k: scrub_card_numbers(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_card_numbers(v) for v in value]
    return value


class _RedactingFactory:
    """A log record factory that takes card numbers out of every message (any logger)."""

    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: logging reports it when formatting
            return record
        clean = redact_card_numbers(message)
        if clean is not message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # The traceback is formatted once, here, so that a handler uses the clean text.
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_card_numbers(trace)
        return record


def install_log_redaction() -> None:
    """Redact card numbers in every log record of this process, from any logger (idempotent).

    A record factory, not a handler filter: it also covers the records of libraries (uvicorn's
    access log with a number in a URL) and handlers added later.
    """
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
