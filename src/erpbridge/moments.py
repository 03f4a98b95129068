"""Moments given by users (``--as-of``, ``--from``, ``?as_of=``): ISO 8601, read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from erpbridge.errors import ErpbridgeError

__all__ = ["BadMoment", "parse_moment"]


class BadMoment(ErpbridgeError):
    """A time that is not one: names the option and the text."""


def parse_moment(option: str, text: str) -> datetime:
    """``text`` as an aware UTC time: ISO 8601; a date alone is its midnight, a time without a
    zone is UTC. :class:`BadMoment` naming ``option`` otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadMoment(
            f"{option} {text!r}: not a time; write ISO 8601, e.g. 2026-12-07T09:30:00Z or "
            "2026-12-07"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
