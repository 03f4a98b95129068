"""Field types of canonical entities and the coercion of mapped values into them.

Canonical values are JSON-friendly so that a payload hashes the same everywhere: decimals are
normalised strings (``"19.9"``), dates ``YYYY-MM-DD``, datetimes ISO 8601 in UTC with ``Z``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.errors import DataError, DataErrors
from erpbridge.pci import has_card_number

__all__ = ["FieldPlan", "FieldSpec", "FieldType", "coerce_value", "field_plan"]

FieldType = Literal[
    "string", "integer", "decimal", "boolean", "date", "datetime", "object", "list", "json"
]

_TRUE = frozenset({"true", "1", "yes", "y", "on", "t", "x", "ja", "j"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "f", "", "nein"})
_NOT_A_FIELD = "not a field of this entity"
_MISSING = "required field is missing"


class FieldSpec(BaseModel):
    """One field of an entity: its type, whether it is required, and its constraints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # ``model: string`` in a configuration means ``model: {type: string}``.
        return {"type": data} if isinstance(data, str) else data

    type: FieldType = "string"
    required: bool = False
    description: str = ""
    default: Any = None
    #: ``string``: a regular expression the whole value must match.
    pattern: str | None = None
    #: ``string``: the allowed values.
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    #: ``integer``/``decimal``: inclusive bounds.
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    #: ``object``: its fields; ``list``: the fields of each item (a list of objects), or
    #: ``items`` for a list of scalars.
    fields: dict[str, FieldSpec] | None = None
    items: FieldType | None = None
    #: Refuse anything holding a payment card number (see :mod:`erpbridge.pci`), whatever the
    #: flow's ``card_numbers`` policy says: the field takes tokens only.
    no_card_numbers: bool = Field(default=False)

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"invalid pattern {self.pattern!r}: {exc}") from None
        if self.type == "list" and self.fields is None and self.items is None:
            raise ValueError("a list field needs 'fields' (list of objects) or 'items'")
        if self.default is not None and self.type not in ("object", "list", "json"):
            try:
                coerce_value(self, self.default, "default")
            except DataError as exc:
                raise ValueError(f"the default does not fit the field: {exc.reason}") from None
        if self.fields is not None and self.type not in ("object", "list"):
            raise ValueError("'fields' only applies to object and list fields")
        return self


_MAX_EXPONENT = 100
#: The integers whose Decimal has an exponent within ``_MAX_EXPONENT``.
_INT_LIMIT = 10 ** (_MAX_EXPONENT + 1)


def _to_decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool):
        raise DataError(path, f"expected a number, got boolean {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise DataError(path, f"not a number: {value!r}") from None
    else:
        raise DataError(path, f"expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise DataError(path, f"not a finite number: {value!r}")
    # No business number is this large or small, and its plain text (or int) would take
    # unbounded memory.
    if not result.is_zero() and abs(result.adjusted()) > _MAX_EXPONENT:
        raise DataError(path, f"number out of range: {value!r}")
    return result


def _decimal_text(value: Decimal) -> str:
    # Plain notation, exact: normalize() would round to the context's 28 digits. No "-0".
    if value.is_zero():
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _to_date(value: Any, path: str) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return _date_text(value)
        except ValueError:
            raise DataError(path, f"not a date (YYYY-MM-DD): {value!r}") from None
    raise DataError(path, f"expected a date, got {type(value).__name__}")


def _to_datetime(value: Any, path: str) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            return _datetime_text(value)
        except ValueError:
            raise DataError(path, f"not a date-time (ISO 8601): {value!r}") from None
        except OverflowError:
            raise DataError(path, f"date-time out of range: {value!r}") from None
    else:
        raise DataError(path, f"expected a date-time, got {type(value).__name__}")
    try:
        return _utc_text(moment)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
        raise DataError(path, f"date-time out of range: {value!r}") from None


def _utc_text(moment: datetime) -> str:
    # Naive values are taken as UTC: sources that mean local time say so with a transform.
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


# Text dates and times repeat a lot in real data (order dates, timestamps of one import run);
# parsing is the costliest step of validating a record, so the canonical text is memoised.
@lru_cache(maxsize=65_536)
def _date_text(value: str) -> str:
    text = value.strip()
    return date.fromisoformat(text[:10] if len(text) >= 10 else text).isoformat()


@lru_cache(maxsize=65_536)
def _datetime_text(value: str) -> str:
    return _utc_text(datetime.fromisoformat(value.strip()))


def _to_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise DataError(path, f"not a boolean: {value!r}")


def _to_string(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return _decimal_text(_to_decimal(value, path)) if isinstance(value, Decimal) else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return _to_datetime(value, path)
    if isinstance(value, date):
        return value.isoformat()
    raise DataError(path, f"expected text, got {type(value).__name__}")


def _to_integer(value: Any, path: str) -> int:
    if value.__class__ is int and -_INT_LIMIT < value < _INT_LIMIT:
        return int(value)  # the usual case (bool, a subclass, is not): nothing to check
    number = _to_decimal(value, path)
    if number != number.to_integral_value():
        raise DataError(path, f"not a whole number: {value!r}")
    return int(number)


_SCALARS: dict[str, Callable[[Any, str], Any]] = {
    "string": _to_string,
    "integer": _to_integer,
    "boolean": _to_bool,
    "date": _to_date,
    "datetime": _to_datetime,
    "decimal": lambda v, p: _decimal_text(_to_decimal(v, p)),
}


def _check_constraints(spec: FieldSpec, value: Any, path: str) -> None:
    if isinstance(value, str):
        if spec.max_length is not None and len(value) > spec.max_length:
            raise DataError(path, f"longer than {spec.max_length} characters")
        if spec.pattern is not None and re.fullmatch(spec.pattern, value) is None:
            raise DataError(path, f"{value!r} does not match {spec.pattern!r}")
        if spec.choices is not None and value not in spec.choices:
            raise DataError(path, f"{value!r} is not one of {', '.join(spec.choices)}")
        if spec.no_card_numbers and has_card_number(value):
            raise DataError(path, "looks like a raw payment card number; only tokens are accepted")
    if spec.type in ("integer", "decimal") and (
        spec.minimum is not None or spec.maximum is not None
    ):
        number = Decimal(value)
        if spec.minimum is not None and number < spec.minimum:
            raise DataError(path, f"{value} is below the minimum {spec.minimum}")
        if spec.maximum is not None and number > spec.maximum:
            raise DataError(path, f"{value} is above the maximum {spec.maximum}")


def coerce_value(spec: FieldSpec, value: Any, path: str) -> Any:
    """Coerce ``value`` into the canonical form of ``spec``; raise :class:`DataError` if it can't.

    ``None`` stays ``None`` (required-ness is checked by the entity, which knows defaults).
    """
    if value is None:
        return None
    if spec.type == "json":
        return value
    if spec.type == "object":
        if not isinstance(value, Mapping):
            raise DataError(path, f"expected an object, got {type(value).__name__}")
        return coerce_object(spec.fields or {}, value, path)
    if spec.type == "list":
        if isinstance(value, Mapping | str) or not hasattr(value, "__iter__"):
            # A lone object where a list is expected (XML with one repeated child) becomes one item.
            if isinstance(value, Mapping) and spec.fields is not None:
                value = [value]
            else:
                raise DataError(path, f"expected a list, got {type(value).__name__}")
        out = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if spec.fields is not None:
                if not isinstance(item, Mapping):
                    raise DataError(item_path, f"expected an object, got {type(item).__name__}")
                out.append(coerce_object(spec.fields, item, item_path))
            else:
                out.append(coerce_value(FieldSpec(type=spec.items or "string"), item, item_path))
        return out
    result = _SCALARS[spec.type](value, path)
    _check_constraints(spec, result, path)
    return result


def coerce_object(
    fields: Mapping[str, FieldSpec], data: Mapping[str, Any], path: str
) -> dict[str, Any]:
    """Coerce every field of ``data``: fill defaults, enforce required ones, refuse unknown ones."""
    out: dict[str, Any] = {}
    problems = [
        (f"{path}.{name}" if path else name, _NOT_A_FIELD) for name in data if name not in fields
    ]
    for name, spec in fields.items():
        where = f"{path}.{name}" if path else name
        try:
            value = coerce_value(spec, data.get(name), where)
            if value is None and spec.default is not None:
                value = coerce_value(spec, spec.default, where)
        except DataError as exc:
            problems.extend(exc.problems)
            continue
        if value is None or value == "":
            if spec.required:
                problems.append((where, _MISSING))
            if value is None:
                continue
        out[name] = value
    if problems:
        raise DataErrors.of(problems)
    return out


def _compile_value(spec: FieldSpec, path: str) -> Callable[[Any], Any]:
    """A coercer for one field, specialised up front (the hot path of every mapped record)."""
    if spec.type in ("json", "object", "list"):
        return lambda value: coerce_value(spec, value, path)
    scalar = _SCALARS[spec.type]
    constrained = (
        spec.pattern is not None
        or spec.choices is not None
        or spec.max_length is not None
        or spec.no_card_numbers
        or spec.minimum is not None
        or spec.maximum is not None
    )
    if not constrained:
        if spec.type == "string":  # most fields: text that needs no work
            return lambda value: value if value.__class__ is str else scalar(value, path)
        return lambda value: scalar(value, path)
    if spec.pattern is not None and not (
        spec.choices or spec.max_length or spec.no_card_numbers or spec.type != "string"
    ):
        matcher = re.compile(spec.pattern).fullmatch

        def matching(value: Any) -> Any:
            result = scalar(value, path)
            if matcher(result) is None:
                raise DataError(path, f"{result!r} does not match {spec.pattern!r}")
            return result

        return matching
    if spec.choices is not None and not (
        spec.pattern or spec.max_length or spec.no_card_numbers or spec.type != "string"
    ):
        allowed, listed = frozenset(spec.choices), ", ".join(spec.choices)

        def choosing(value: Any) -> Any:
            result = scalar(value, path)
            if result not in allowed:
                raise DataError(path, f"{result!r} is not one of {listed}")
            return result

        return choosing

    def coerce(value: Any) -> Any:
        result = scalar(value, path)
        _check_constraints(spec, result, path)
        return result

    return coerce


#: One field of a compiled object: name, coercer, coerced default, required, path.
FieldPlan = tuple[str, Callable[[Any], Any], Any, bool, str]


def field_plan(fields: Mapping[str, FieldSpec], path: str = "") -> list[FieldPlan]:
    """Each field's coercer and coerced default, in declaration order, compiled once."""
    plan = []
    for name, spec in fields.items():
        where = f"{path}.{name}" if path else name
        coerce = _compile_value(spec, where)
        default = coerce(spec.default) if spec.default is not None else None
        plan.append((name, coerce, default, spec.required, where))
    return plan


def compile_object(
    fields: Mapping[str, FieldSpec], path: str = ""
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """:func:`coerce_object` for one set of fields, compiled once: same result, less work."""
    plan = field_plan(fields, path)
    known = frozenset(fields)

    def validate(data: Mapping[str, Any]) -> dict[str, Any]:
        problems: list[tuple[str, str]] = []
        if not known.issuperset(data):
            problems.extend(
                (f"{path}.{name}" if path else name, _NOT_A_FIELD)
                for name in data
                if name not in known
            )
        out: dict[str, Any] = {}
        for name, coerce, default, required, where in plan:
            value = data.get(name)
            if value is not None:
                try:
                    value = coerce(value)
                except DataError as exc:  # go on: the record's every problem at once
                    problems.extend(exc.problems)
                    continue
            if value is None:
                value = default
            if value is None or value == "":
                if required:
                    problems.append((where, _MISSING))
                if value is None:
                    continue
            out[name] = value
        if problems:
            raise DataErrors.of(problems)
        return out

    return validate
