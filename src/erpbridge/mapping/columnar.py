"""Map and validate a whole batch column by column: the fused pass of a compiled mapping
(:attr:`CompiledMapping._fused <erpbridge.mapping.compiler.CompiledMapping>`) turned sideways.

Per record, the fused pass calls a rule and a coercer for every field of every record. Here each
entity field is one column of the batch:

- A field whose rule reads one source column and nothing else (a plain column, or one with
  transforms, a value map, a fixed unit or currency) is a function of that column's value alone,
  so it runs once per *distinct* value of the batch when the column holds only text, only
  integers or only booleans (order dates, status codes, currencies, channels repeat a lot), and
  once per value otherwise. The function is the field's own rule, coercer and checks: the same
  code as the per-record pass, so the same result.
- A field whose rule needs the whole record (a template, nested fields, a unit or currency read
  from another column) runs per record, as before.
- An unmapped field is its default (or absent), the same for every record.

A record that fails anywhere (a rule's or coercer's :class:`~erpbridge.errors.DataError`, a
missing required or key field, a card number) comes back as ``None``: the caller maps it again
through the per-record path, which names every problem with its field path as it always did.

The card-number check (:class:`~erpbridge.model.cards.CardPolicy`) runs once over the batch's
long texts; only when that finds something are the records checked one by one. The scanner's
runs never cross a line break, so a batch with none has no record with one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from erpbridge.errors import DataError
from erpbridge.model.cards import CardPolicy
from erpbridge.model.fields import FieldPlan, FieldSpec
from erpbridge.pci import has_card_number

__all__ = ["SCALAR_TYPES", "ColumnarPlan"]

Rule = Callable[[Mapping[str, Any]], Any]
ValueRule = Callable[[Any], Any]


class _Mark:
    """A result that is no value: its own class, so one pass over a column's types finds it."""


#: A record that fails: mapped again per record, which names its problems.
_FAIL: Any = _Mark()
#: A field left out of the payload (missing, not required, no default).
_OMIT: Any = _Mark()
_NONE = type(None)
#: Columns whose equal values always map alike (``1 == 1.0 == True`` and aware date-times equal
#: across zones do not: those columns run per value).
_SAME_KIND = (frozenset({str}), frozenset({int}), frozenset({bool}))
_NULL = frozenset({_NONE})
#: Field types whose canonical value is a string, an integer or a boolean.
SCALAR_TYPES = frozenset({"string", "integer", "decimal", "boolean", "date", "datetime"})
_MIN_TEXT = 13  # shorter texts cannot hold a card number (erpbridge.pci)
_INT_LIMIT = 10**101  # integers the "integer" field type takes as they are (model.fields)
_ONLY_STR, _ONLY_INT, _ONLY_FLOAT = frozenset({str}), frozenset({int}), frozenset({float})


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    #: The one source column the rule reads, or ``None``: the rule needs the record.
    column: str | None
    #: value (or record, when ``column`` is None) -> canonical value, _OMIT or _FAIL.
    cell: Callable[[Any], Any]
    #: The field is not mapped: every record gets ``constant``.
    unmapped: bool
    constant: Any
    #: ``str``/``int``: a plain column into an unconstrained field of that type, whose values
    #: are the payload's as they are when all of them are of that type (and not blank);
    #: ``float``: a plain column into an unconstrained decimal field, whose floats' texts are.
    passthrough: type | None


class ColumnarPlan:
    """The fused pass of one compiled mapping, applied to a batch of records at once."""

    def __init__(
        self,
        plan: Sequence[FieldPlan],
        specs: Mapping[str, FieldSpec],
        rules: Mapping[str, Rule],
        columns: Mapping[str, tuple[str, ValueRule]],
        key: Sequence[str],
        missing: Any,
        cards: CardPolicy,
        plain: ValueRule,
    ) -> None:
        """``plan``: the entity's field plan, ``specs`` its fields; ``rules``: the compiled
        rules; ``columns``: field -> the one source column its rule reads and the rule as a
        function of that value (fields whose rule needs the record are absent); ``missing``:
        the rules' "no value" sentinel; ``plain``: the value rule of a column taken as it is."""
        keys = frozenset(key)
        self.fields: list[_Field] = []
        for name, coerce, default, required, _ in plan:
            absent = _FAIL if required or name in keys else _OMIT
            finish = _finisher(coerce, default, required, absent, missing)
            rule = rules.get(name)
            if rule is None:
                constant = _then(_identity, finish)(None)
                self.fields.append(_Field(name, None, finish, True, constant, None))
            elif name in columns:
                column, value_rule = columns[name]
                through = _passthrough(specs[name]) if value_rule is plain else None
                cell = _then(value_rule, finish)
                self.fields.append(_Field(name, column, cell, False, None, through))
            else:
                row = _then(rule, finish)
                self.fields.append(_Field(name, None, row, False, None, None))
        self.names = [f.name for f in self.fields]
        self.cards = cards
        #: Every field is a scalar: the card check need not walk nested values.
        self.flat = all(specs[f.name].type in SCALAR_TYPES for f in self.fields)

    def map(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        """The canonical payload of each record, or ``None`` for a record with any problem."""
        count = len(records)
        columns: list[list[Any]] = []
        texts: list[str] = []
        failed: set[int] = set()
        omitted: list[tuple[str, list[Any]]] = []
        for spec in self.fields:
            results: Any
            if spec.unmapped:
                results = [spec.constant] * count
                distinct: Any = (spec.constant,)
            elif spec.column is None:
                results = distinct = list(map(spec.cell, records))
            else:
                results, distinct = _column(spec, [r.get(spec.column) for r in records])
            kinds = frozenset(map(type, distinct))
            if _Mark in kinds:
                if _FAIL in distinct:
                    failed.update(i for i, r in enumerate(results) if r is _FAIL)
                if _OMIT in distinct:
                    omitted.append((spec.name, results))
            if kinds == _ONLY_STR:  # the usual text column: short texts cannot hold a number
                texts.append("\n".join(distinct))
            elif str in kinds:
                texts.extend(r for r in distinct if r.__class__ is str and len(r) >= _MIN_TEXT)
            columns.append(results)
        names = self.names
        payloads: list[dict[str, Any] | None] = [
            dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)
        ]
        for name, results in omitted:
            for i, result in enumerate(results):
                if result is _OMIT:
                    payload = payloads[i]
                    if payload is not None:
                        del payload[name]
        for i in failed:
            payloads[i] = None
        if not self.flat or has_card_number("\n".join(texts)):
            payloads = [self._cards(p) for p in payloads]
        return payloads

    def _cards(self, payload: dict[str, Any] | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        try:
            return self.cards.apply(payload)
        except DataError:
            return None  # the per-record pass raises it again, with the field path


def _column(spec: _Field, values: list[Any]) -> tuple[list[Any], Any]:
    """One field's results for its source column's values, and their distinct results (or all
    of them) for the checks that follow."""
    kinds = frozenset(map(type, values))
    through = spec.passthrough
    if through is str and kinds == _ONLY_STR and all(map(str.strip, values)):
        return values, values
    if (
        through is int
        and kinds == _ONLY_INT
        and -_INT_LIMIT < min(values) <= max(values) < _INT_LIMIT
    ):
        return values, values
    if through is float and kinds == _ONLY_FLOAT:
        texts = _float_texts(values)
        if texts is not None:
            return texts, texts
    cell = spec.cell
    if kinds - _NULL in _SAME_KIND:
        distinct = set(values)
        if len(distinct) * 2 <= len(values):  # repeated values: each one mapped once
            memo = {value: cell(value) for value in distinct}
            return list(map(memo.__getitem__, values)), memo.values()
    results = list(map(cell, values))
    return results, results


def _passthrough(spec: FieldSpec) -> type | None:
    unconstrained = not (
        spec.pattern
        or spec.choices is not None
        or spec.max_length is not None
        or spec.no_card_numbers
        or spec.minimum is not None
        or spec.maximum is not None
    )
    if not unconstrained:
        return None
    return {"string": str, "integer": int, "decimal": float}.get(spec.type)


def _float_texts(values: list[float]) -> list[str] | None:
    """The canonical decimal text of each float (``Decimal(repr(x))`` in plain notation
    without trailing zeros, ``"0"`` for either zero), straight from ``repr``; ``None`` when
    one of them is written with an exponent or is not finite (the per-value path then)."""
    texts = list(map(repr, values))
    joined = "".join(texts)
    if "e" in joined or "n" in joined:  # 1e-05, 1.5e+16, inf, nan
        return None
    return [
        text.rstrip("0").rstrip(".") if value else "0"
        for value, text in zip(values, texts, strict=True)
    ]


def _finisher(
    coerce: Callable[[Any], Any], default: Any, required: bool, absent: Any, missing: Any
) -> Callable[[Any], Any]:
    """What the fused pass does with a rule's result: coerce, default, required, key."""

    def finish(value: Any) -> Any:
        if value is missing:
            value = None
        elif value is not None:
            value = coerce(value)
        if value is None:
            value = default
        if value is None:
            return absent
        if required and value == "":
            return _FAIL
        return value

    return finish


def _identity(value: Any) -> Any:
    return value


def _then(first: Callable[[Any], Any], finish: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``finish(first(x))``, with a :class:`DataError` as ``_FAIL``."""

    def run(value: Any) -> Any:
        try:
            return finish(first(value))
        except DataError:
            return _FAIL

    return run
