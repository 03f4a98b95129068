"""Named transforms of the mapping language.

Each transform is built once, at compile time, from its name and argument
(``trim``, ``{date: "%d.%m.%Y"}``, ``{round: 2}``) into a plain function of one value. A bad
argument is a configuration error; a value the function cannot handle raises ``ValueError``,
which the compiler turns into a rejection naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from erpbridge.suggest import did_you_mean

__all__ = ["TRANSFORMS", "Transform", "build_transform"]

Transform = Callable[[Any], Any]
Factory = Callable[[Any], Transform]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _no_arg(fn: Transform) -> Factory:
    def factory(arg: Any) -> Transform:
        if arg is not None:
            raise ValueError("takes no argument")
        return fn

    return factory


def _parse_decimal(arg: Any) -> Transform:
    """``decimal`` parses numbers; the argument is the decimal separator ('.' or ',')."""
    separator = "." if arg is None else arg
    if separator not in (".", ","):
        raise ValueError("the argument is the decimal separator: '.' or ','")
    thousands = "," if separator == "." else "."

    def parse(value: Any) -> Decimal:
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, float):
            return Decimal(repr(value))
        text = _text(value).strip().replace(" ", "").replace("\u00a0", "").replace("'", "")
        text = text.replace(thousands, "")
        if separator == ",":
            text = text.replace(",", ".")
        # Trailing minus as some ERPs print it ("12,50-").
        if text.endswith("-"):
            text = "-" + text[:-1]
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None

    return parse


#: ``decimal`` with the default separator, built once (``integer`` and ``unix_time`` use it).
_to_decimal = _parse_decimal(None)


def _round(arg: Any) -> Transform:
    if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg <= 12:
        raise ValueError("the argument is the number of decimal places (0–12)")
    quantum = Decimal(1).scaleb(-arg)
    to_decimal = _parse_decimal(None)
    return lambda value: to_decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)


def _arithmetic(op: str) -> Factory:
    def factory(arg: Any) -> Transform:
        try:
            operand = Decimal(str(arg))
        except InvalidOperation:
            raise ValueError("the argument must be a number") from None
        if op == "divide" and operand == 0:
            raise ValueError("cannot divide by zero")
        to_decimal = _parse_decimal(None)
        if op == "multiply":
            return lambda value: to_decimal(value) * operand
        return lambda value: to_decimal(value) / operand

    return factory


def _format_and_zone(arg: Any, name: str) -> tuple[str, ZoneInfo | None]:
    if isinstance(arg, str):
        return arg, None
    if isinstance(arg, dict) and isinstance(arg.get("format"), str):
        unknown = set(arg) - {"format", "timezone"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
        zone = arg.get("timezone")
        try:
            return arg["format"], ZoneInfo(zone) if zone else None
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
    raise ValueError(f"{name} needs a format, e.g. {{{name}: '%d.%m.%Y'}}")


def _memo_strptime(fmt: str) -> Callable[[str], datetime]:
    """``datetime.strptime(text, fmt)``, memoised: dates repeat a lot in real data (one order
    date per day, one timestamp per import), and strptime is the costliest step of mapping a
    record (measured: 5 of 32 s of an initial migration's mapping). datetimes are immutable;
    the cache is small (a few hundred KB), as texts that never repeat gain nothing from it."""

    @lru_cache(maxsize=4096)
    def parse(text: str) -> datetime:
        return datetime.strptime(text, fmt)

    return parse


def _parse_date(arg: Any) -> Transform:
    """Parse with a format; an aware date-time gives its date in ``timezone`` when given."""
    fmt, zone = _format_and_zone(arg, "date")
    strptime = _memo_strptime(fmt)

    def parse(value: Any) -> date:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            return value
        else:
            try:
                moment = strptime(_text(value).strip())
            except ValueError:
                raise ValueError(f"{value!r} does not match the date format {fmt!r}") from None
        if zone is not None and moment.tzinfo is not None:
            moment = moment.astimezone(zone)
        return moment.date()

    return parse


def _parse_datetime(arg: Any) -> Transform:
    """Parse with a format; naive results are in ``timezone`` (default UTC)."""
    fmt, zone = _format_and_zone(arg, "datetime")
    strptime = _memo_strptime(fmt)

    def parse(value: Any) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = strptime(_text(value).strip())
            except ValueError:
                raise ValueError(f"{value!r} does not match the format {fmt!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone or UTC)
        return moment

    return parse


def _local_time(arg: Any) -> Transform:
    """Read naive date-times as local time of a zone (``{local_time: Europe/Berlin}``)."""
    try:
        zone = ZoneInfo(str(arg))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {arg!r}") from None

    def attach(value: Any) -> datetime:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(_text(value))
        return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment

    return attach


def _unix_time(value: Any) -> datetime:
    return datetime.fromtimestamp(float(_to_decimal(value)), tz=UTC)


def _format_date(arg: Any) -> Transform:
    """Format a date or date-time; with ``timezone``, date-times are shown in that zone."""
    fmt, zone = _format_and_zone(arg, "format_date")

    def render(value: Any) -> str:
        moment = value if isinstance(value, date) else datetime.fromisoformat(_text(value))
        if zone is not None and isinstance(moment, datetime):
            # Naive date-times are UTC, as everywhere in the hub.
            aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            moment = aware.astimezone(zone)
        return moment.strftime(fmt)

    return render


def _format_decimal(arg: Any) -> Transform:
    places = arg if isinstance(arg, int) and not isinstance(arg, bool) else None
    if places is None or not 0 <= places <= 12:
        raise ValueError("the argument is the number of decimal places (0–12)")
    rounder = _round(places)
    return lambda value: format(rounder(value), "f")


def _replace(arg: Any) -> Transform:
    if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
        raise ValueError("the argument is [old, new]")
    old, new = arg
    return lambda value: _text(value).replace(old, new)


def _regex(arg: Any) -> Transform:
    """``{regex: 'pattern'}`` keeps the first group (or the whole match) of the first match."""
    if not isinstance(arg, str):
        raise ValueError("the argument is a regular expression")
    try:
        pattern = re.compile(arg)
    except re.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from None

    def extract(value: Any) -> str | None:
        match = pattern.search(_text(value))
        if match is None:
            return None
        return match.group(1) if pattern.groups else match.group(0)

    return extract


def _string_arg(name: str, build: Callable[[str], Transform]) -> Factory:
    def factory(arg: Any) -> Transform:
        if not isinstance(arg, str):
            raise ValueError(f"{name} takes a text argument")
        return build(arg)

    return factory


def _zfill(arg: Any) -> Transform:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
        raise ValueError("the argument is the width")
    return lambda value: _text(value).zfill(arg)


def _boolean(arg: Any) -> Transform:
    """``boolean`` or ``{boolean: [yes-values]}``: the listed values are true, others false."""
    if arg is None:
        return lambda value: value
    if not isinstance(arg, list):
        raise ValueError("the argument is the list of values meaning true")
    truthy = {str(a).strip().lower() for a in arg}
    return lambda value: _text(value).strip().lower() in truthy


TRANSFORMS: dict[str, Factory] = {
    "trim": _no_arg(lambda v: _text(v).strip()),
    "upper": _no_arg(lambda v: _text(v).upper()),
    "lower": _no_arg(lambda v: _text(v).lower()),
    "title": _no_arg(lambda v: _text(v).title()),
    "capitalize": _no_arg(lambda v: _text(v).capitalize()),
    "collapse_spaces": _no_arg(lambda v: " ".join(_text(v).split())),
    "string": _no_arg(_text),
    "strip_leading_zeros": _no_arg(lambda v: _text(v).lstrip("0") or "0"),
    "zfill": _zfill,
    "prefix": _string_arg("prefix", lambda p: lambda v: p + _text(v)),
    "suffix": _string_arg("suffix", lambda s: lambda v: _text(v) + s),
    "replace": _replace,
    "regex": _regex,
    "split": _string_arg("split", lambda sep: lambda v: [p.strip() for p in _text(v).split(sep)]),
    "decimal": _parse_decimal,
    # Half-up like ``round``: 12.5 → 13 (Decimal's default would give 12).
    "integer": _no_arg(lambda v: int(_to_decimal(v).to_integral_value(rounding=ROUND_HALF_UP))),
    "round": _round,
    "multiply": _arithmetic("multiply"),
    "divide": _arithmetic("divide"),
    "boolean": _boolean,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "local_time": _local_time,
    "unix_time": _no_arg(_unix_time),
    "format_date": _format_date,
    "format_decimal": _format_decimal,
}


def build_transform(spec: str | dict[str, Any]) -> tuple[str, Transform]:
    """Build one transform from ``'name'`` or ``{name: arg}``; raise ``ValueError`` if unknown."""
    if isinstance(spec, str):
        name, arg = spec, None
    elif isinstance(spec, dict) and len(spec) == 1:
        ((name, arg),) = spec.items()
    else:
        raise ValueError("a transform is a name or a mapping of one name to its argument")
    factory = TRANSFORMS.get(name)
    if factory is None:
        hint = did_you_mean(name, TRANSFORMS)
        known = f" (transforms: {', '.join(TRANSFORMS)})" if hint else ""
        raise ValueError(f"unknown transform {name!r}{hint}{known}")
    try:
        return name, factory(arg)
    except ValueError as exc:
        raise ValueError(f"transform {name!r}: {exc}") from None
