"""Compile a flow's mapping once into plain closures, then apply it to every record.

Compilation checks everything that can be checked without data — target fields exist in the
entity, transforms and units are known, arguments make sense — and reports every problem with
its path (``customer.addresses.city: unknown transform 'cents'``). Applying a compiled mapping
raises :class:`~erpbridge.errors.DataError` naming the canonical field path and the cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from erpbridge.errors import DataError, DataErrors
from erpbridge.mapping.columnar import SCALAR_TYPES, ColumnarPlan
from erpbridge.mapping.paths import getter as getter  # re-exported: engine, API
from erpbridge.mapping.spec import FieldMapping, MappingSpec
from erpbridge.mapping.transforms import Transform, build_transform
from erpbridge.mapping.units import convert_currency, unit_factor
from erpbridge.model.cards import CardPolicy, CardSetting
from erpbridge.model.entities import EntitySpec
from erpbridge.model.fields import FieldSpec
from erpbridge.suggest import did_you_mean

__all__ = [
    "CompiledMapping",
    "CurrencyRates",
    "MappingCompileError",
    "compile_mapping",
    "compile_outbound",
]

_MISSING: Any = object()
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

_NO_RECORD: Mapping[str, Any] = {}

Rule = Callable[[Mapping[str, Any]], Any]
ValueRule = Callable[[Any], Any]


@dataclass(frozen=True)
class CurrencyRates:
    """Exchange rates quoted as ``1 base = rate × currency``."""

    base: str = "EUR"
    rates: Mapping[str, Decimal] | None = None


class MappingCompileError(ValueError):
    """Every problem found while compiling, as (path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in problems))


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


class _Compiler:
    def __init__(self, rates: CurrencyRates) -> None:
        self.rates = rates
        self.problems: list[tuple[str, str]] = []
        #: Top-level field -> the one source column its rule reads (and nothing else), and the
        #: rule as a function of that column's value.
        self.columns: dict[str, tuple[str, ValueRule]] = {}

    def fail(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def object_rules(
        self, spec: Mapping[str, str | FieldMapping], fields: Mapping[str, FieldSpec], path: str
    ) -> list[tuple[str, Rule]]:
        rules = []
        for name, entry in spec.items():
            where = f"{path}.{name}" if path else name
            if name not in fields:
                known = ", ".join(fields)
                hint = did_you_mean(name, fields)
                self.fail(where, f"'{name}' is not a field of the entity{hint} (fields: {known})")
                continue
            rule = self.field_rule(entry, fields[name], where)
            if rule is not None:
                rules.append((name, rule))
        return rules

    def field_rule(self, entry: str | FieldMapping, target: FieldSpec, where: str) -> Rule | None:
        if isinstance(entry, str):
            entry = FieldMapping(**{"from": entry})
        raw = self.raw_rule(entry, target, where)
        steps = self.steps(entry, where)
        if raw is None or steps is None:
            return None
        default, required = entry.default, entry.required
        source = entry.from_ or entry.each or entry.template or "value"
        one_column = "." not in where and _reads_one_column(entry)
        if not steps and default is None and not required:
            if _reads_one_column(entry):
                if one_column:
                    self.columns[where] = (str(entry.from_), _plain_value)
                return _column_rule(str(entry.from_))
            return _plain_rule(raw)

        def finish(value: Any, record: Mapping[str, Any]) -> Any:
            # _empty(value) inlined here (a call per step adds up over millions of records)
            if value is not None and not (isinstance(value, str) and not value.strip()):
                try:
                    for step in steps:
                        value = step(value, record)
                        if value is None or (isinstance(value, str) and not value.strip()):
                            break  # e.g. a regex that did not match: now missing
                    else:
                        return value
                except DataError:
                    raise
                except (ValueError, ArithmeticError, TypeError) as exc:
                    raise DataError(where, f"{exc} (from {source!r})") from None
            if default is not None:
                return default
            if required:
                raise DataError(where, f"required, but {source!r} is empty")
            return _MISSING

        if one_column:  # its steps never look at the record
            self.columns[where] = (str(entry.from_), lambda value: finish(value, _NO_RECORD))
        return lambda record: finish(raw(record), record)

    def raw_rule(self, entry: FieldMapping, target: FieldSpec, where: str) -> Rule | None:
        if entry.each is not None:
            return self.list_rule(entry, target, where)
        if entry.items is not None:
            return self.items_rule(entry.items, target, where)
        if entry.fields is not None:
            if target.type not in ("object", "json") or target.fields is None:
                self.fail(where, "'fields' maps an object, but this field is a " + target.type)
                return None
            rules = self.object_rules(entry.fields, target.fields, where)
            base = getter(entry.from_) if entry.from_ else None
            return lambda record: _apply_rules(rules, base(record) if base else record)
        if entry.from_ is not None:
            return getter(entry.from_)
        if entry.template is not None:
            return _template(entry.template)
        constant = entry.value
        return lambda record: constant

    def items_rule(
        self, items: list[dict[str, str | FieldMapping]], target: FieldSpec, where: str
    ) -> Rule | None:
        """A list from flat columns: each block maps one item; empty items are left out."""
        if target.type not in ("list", "json") or target.fields is None:
            self.fail(where, "'items' builds a list of objects, but this field is not one")
            return None
        blocks = [
            self.object_rules(block, target.fields, f"{where}[{i}]")
            for i, block in enumerate(items)
        ]
        # An item that only holds constants (a 'type: billing' label) carries no data.
        constants = [
            {
                name
                for name, entry in block.items()
                if isinstance(entry, FieldMapping) and entry.value is not None
            }
            for block in items
        ]

        def build(record: Mapping[str, Any]) -> Any:
            out = []
            for rules, fixed in zip(blocks, constants, strict=True):
                item = _apply_rules(rules, record)
                if item and not set(item) <= fixed:
                    out.append(item)
            return out or None

        return build

    def list_rule(self, entry: FieldMapping, target: FieldSpec, where: str) -> Rule | None:
        if target.type not in ("list", "json") or target.fields is None:
            self.fail(where, "'each' maps a list of objects, but this field is not one")
            return None
        assert entry.each is not None and entry.fields is not None
        rules = self.object_rules(entry.fields, target.fields, where)
        items = getter(entry.each)

        def build(record: Mapping[str, Any]) -> Any:
            value = items(record)
            if value is None:
                return None
            if isinstance(value, Mapping):  # one XML child where a list is expected
                value = [value]
            if not isinstance(value, list):
                raise DataError(where, f"{entry.each!r} is not a list")
            out = []
            for i, item in enumerate(value):
                if not isinstance(item, Mapping):
                    raise DataError(f"{where}[{i}]", "list item is not an object")
                try:
                    out.append(_apply_rules(rules, item))
                except DataError as exc:
                    raise DataError(
                        exc.path.replace(where, f"{where}[{i}]", 1), exc.reason
                    ) from None
            return out

        return build

    def steps(
        self, entry: FieldMapping, where: str
    ) -> list[Callable[[Any, Mapping[str, Any]], Any]] | None:
        steps: list[Callable[[Any, Mapping[str, Any]], Any]] = []
        ok = True
        for index, spec in enumerate(entry.transforms):
            try:
                _, fn = build_transform(spec)
            except ValueError as exc:
                self.fail(f"{where}.transforms[{index}]", str(exc))
                ok = False
                continue
            steps.append(_plain(fn))
        if entry.map is not None:
            steps.append(_value_map(entry.map, entry.fallback, entry.keep_unmapped))
        if entry.unit is not None:
            step = self.unit_step(entry, where)
            ok = ok and step is not None
            if step is not None:
                steps.append(step)
        if entry.currency is not None:
            step = self.currency_step(entry, where)
            ok = ok and step is not None
            if step is not None:
                steps.append(step)
        if entry.round is not None:
            steps.append(_plain(build_transform({"round": entry.round})[1]))
        return steps if ok else None

    def unit_step(
        self, entry: FieldMapping, where: str
    ) -> Callable[[Any, Mapping[str, Any]], Any] | None:
        unit = entry.unit
        assert unit is not None
        to_decimal = build_transform("decimal")[1]
        if unit.from_ is not None:
            try:
                factor = unit_factor(unit.from_, unit.to)
            except ValueError as exc:
                self.fail(f"{where}.unit", str(exc))
                return None
            return lambda value, record: to_decimal(value) * factor
        try:
            unit_factor(unit.to, unit.to)
        except ValueError as exc:
            self.fail(f"{where}.unit.to", str(exc))
            return None
        source_unit = getter(unit.from_path or "")
        return lambda value, record: (
            to_decimal(value) * unit_factor(str(source_unit(record) or ""), unit.to)
        )

    def currency_step(
        self, entry: FieldMapping, where: str
    ) -> Callable[[Any, Mapping[str, Any]], Any] | None:
        currency = entry.currency
        assert currency is not None
        base, rates = self.rates.base, self.rates.rates or {}
        for code in (currency.from_, currency.to):
            if code is not None and code != base and code not in rates:
                self.fail(f"{where}.currency", f"no exchange rate for {code!r} in currency_rates")
                return None
        to_decimal = build_transform("decimal")[1]
        source = getter(currency.from_path) if currency.from_path else None
        fixed = currency.from_

        def convert(value: Any, record: Mapping[str, Any]) -> Decimal:
            code = fixed if source is None else str(source(record) or "").strip().upper()
            return convert_currency(to_decimal(value), code or "", currency.to, base, rates)

        return convert


def _reads_one_column(entry: FieldMapping) -> bool:
    """The rule is a function of one plain source column's value (transforms are pure; a unit
    or currency named in the mapping, not read from another column)."""
    return (
        entry.from_ is not None
        and not {".", "["} & set(entry.from_)
        and entry.each is None
        and entry.items is None
        and entry.fields is None
        and (entry.unit is None or entry.unit.from_ is not None)
        and (entry.currency is None or entry.currency.from_path is None)
    )


def _plain_rule(raw: Rule) -> Rule:
    """The common case, a value taken as it is: the same result as the full rule, less work."""

    def rule(record: Mapping[str, Any]) -> Any:
        value = raw(record)
        if value is None or (value.__class__ is str and not value.strip()):
            return _MISSING
        return value

    return rule


def _plain_value(value: Any) -> Any:
    """:func:`_column_rule` given the column's value."""
    if value is None or (value.__class__ is str and not value.strip()):
        return _MISSING
    return value


def _column_rule(name: str) -> Rule:
    """:func:`_plain_rule` of a plain column name (``getter`` inlined: the most common rule)."""

    def rule(record: Mapping[str, Any]) -> Any:
        value = record.get(name)
        if value is None or (value.__class__ is str and not value.strip()):
            return _MISSING
        return value

    return rule


def _plain(fn: Transform) -> Callable[[Any, Mapping[str, Any]], Any]:
    return lambda value, record: fn(value)


def _key_text(key: Any) -> str:
    return str(key).lower() if isinstance(key, bool) else str(key)


def _value_map(
    table: Mapping[Any, Any], fallback: Any, keep: bool
) -> Callable[[Any, Mapping[str, Any]], Any]:
    # YAML turns keys like 01 or true into numbers/booleans; compare as text as well.
    lookup = {**{_key_text(k): v for k, v in table.items()}, **table}

    def apply(value: Any, record: Mapping[str, Any]) -> Any:
        if value in lookup:
            return lookup[value]
        text = str(value).strip()
        if text in lookup:
            return lookup[text]
        if fallback is not None:
            return fallback
        if keep:
            return value
        raise ValueError(f"no mapping for value {value!r}")

    return apply


def _template(text: str) -> Rule:
    names = _PLACEHOLDER.findall(text)
    getters = {name: getter(name.strip()) for name in names}

    def render(record: Mapping[str, Any]) -> str:
        values = {name: get(record) for name, get in getters.items()}
        if names and all(_empty(v) for v in values.values()):
            return ""
        return _PLACEHOLDER.sub(
            lambda m: "" if _empty(values[m.group(1)]) else str(values[m.group(1)]), text
        ).strip()

    return render


def _apply_rules(rules: list[tuple[str, Rule]], record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    if not isinstance(record, Mapping):
        raise DataError("", f"expected an object, got {type(record).__name__}")
    out = {}
    for name, rule in rules:
        value = rule(record)
        if value is not _MISSING:
            out[name] = value
    return out


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping compiled for one entity: call it on a source record to get a canonical payload."""

    #: ``None`` for a channel's free shape (OUT flows): no canonical validation.
    entity: EntitySpec | None
    rules: tuple[tuple[str, Rule], ...]
    #: Top-level source fields the mapping cannot do without (a file header must have them).
    required_fields: frozenset[str]
    #: Pass the record through as it is (an OUT flow without a mapping).
    whole: bool = False
    #: What a card number in the result does (PCI DSS): reject the record or mask the number.
    cards: CardPolicy = field(default_factory=CardPolicy)
    #: Top-level field -> the one source column its rule reads, and the rule as a function of
    #: that column's value (see :mod:`.columnar`).
    columns: Mapping[str, tuple[str, ValueRule]] = field(default_factory=dict)

    #: Batches smaller than this are mapped record by record (an event, a replayed rejection).
    COLUMNAR_FROM = 32

    def map_batch(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        """Each record's payload, as :meth:`__call__` gives it, or ``None`` where the record
        must go through :meth:`__call__` itself (it has a problem, whose paths that names; or
        there is no batch path for this mapping or batch size)."""
        plan = self._columnar
        if plan is None or len(records) < self.COLUMNAR_FROM:
            return [None] * len(records)
        return plan.map(records)

    @cached_property
    def flat(self) -> bool:
        """Every payload holds scalars only: no object, list or JSON field in the entity."""
        entity = self.entity
        return (
            entity is not None
            and not self.whole
            and all(spec.type in SCALAR_TYPES for spec in entity.fields.values())
        )

    @cached_property
    def _columnar(self) -> ColumnarPlan | None:
        entity = self.entity
        if entity is None or self.whole:
            return None
        return ColumnarPlan(
            entity.field_plan,
            entity.fields,
            dict(self.rules),
            self.columns,
            entity.key,
            _MISSING,
            self.cards,
            _plain_value,
        )

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        if self.whole:
            return self.cards.apply(dict(record))
        fused = self._fused
        if fused is not None:
            payload = fused(record)
            if payload is not None:
                return self.cards.apply(payload)
        # Unfused, or the record has a problem: the two passes name every problem at once.
        out: dict[str, Any] = {}
        failed: list[tuple[str, str]] = []
        for name, rule in self.rules:
            try:
                value = rule(record)
            except DataError as exc:  # go on: every failing field of the record at once
                failed.extend(exc.problems)
                continue
            if value is not _MISSING:
                out[name] = value
        if failed:
            raise DataErrors.of([*failed, *self._also_invalid(out, failed)])
        return self.cards.apply(out if self.entity is None else self.entity.validate_payload(out))

    @cached_property
    def _fused(self) -> Callable[[Mapping[str, Any]], dict[str, Any] | None] | None:
        """Mapping and entity validation in one pass over the entity's fields: the payload, or
        ``None`` when the record has any problem (then the two passes report them all).

        Same result as the two passes for every record that passes: each field is mapped,
        coerced, defaulted and checked as :meth:`EntitySpec.validate_payload` does, in the
        entity's field order.
        """
        entity = self.entity
        if entity is None:
            return None
        rules = dict(self.rules)
        plan = [
            (name, rules.get(name), coerce, default, required)
            for name, coerce, default, required, _ in entity.field_plan
        ]
        key = entity.key

        def fused(record: Mapping[str, Any]) -> dict[str, Any] | None:
            out: dict[str, Any] = {}
            try:
                for name, rule, coerce, default, required in plan:
                    value = None if rule is None else rule(record)
                    if value is _MISSING:
                        value = None
                    elif value is not None:
                        value = coerce(value)
                    if value is None:
                        value = default
                    if value is None or value == "":
                        if required:
                            return None
                        if value is None:
                            continue
                    out[name] = value
            except DataError:
                return None
            for name in key:
                if out.get(name) is None:
                    return None
            return out

        return fused

    def _also_invalid(
        self, partial: dict[str, Any], failed: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """What the entity finds wrong with the fields that did map, beside ``failed``."""
        if self.entity is None:
            return []
        try:
            self.entity.validate_payload(partial)
        except DataError as exc:
            done = {path.split(".", 1)[0].split("[", 1)[0] for path, _ in failed}
            return [
                (path, why)
                for path, why in exc.problems
                if path.split(".", 1)[0].split("[", 1)[0] not in done
            ]
        return []


def _required_fields(spec: MappingSpec) -> frozenset[str]:
    # A dotted path may name a nested value or a key with literal dots (a CSV header
    # "addr.city"); only the record can tell, so such paths demand no top-level field. The same
    # holds for a selector step ("E1EDKA1[PARVW=AG]"), which may be a literal key too.
    paths: list[str] = []
    for entry in spec.values():
        if isinstance(entry, str):
            paths.append(entry)
        elif entry.default is None and entry.fields is None:
            if entry.from_ is not None:
                paths.append(entry.from_)
            elif entry.template is not None:
                paths.extend(n.strip() for n in _PLACEHOLDER.findall(entry.template))
    return frozenset(path for path in paths if "." not in path and "[" not in path)


class _AnyFields(Mapping[str, FieldSpec]):
    """The fields of a channel's own shape: any name, any value, nested as deep as needed."""

    def __getitem__(self, name: str) -> FieldSpec:
        return _ANY_FIELD

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# model_construct skips validation: a dict is declared, a Mapping that knows every name is given.
_ANY_FIELD = FieldSpec.model_construct(type="json", fields=_AnyFields())  # type: ignore[arg-type]


def compile_outbound(
    spec: MappingSpec | None,
    rates: CurrencyRates | None = None,
    cards: CardSetting = "reject",
) -> CompiledMapping:
    """Compile an OUT flow's mapping: canonical payload → the channel's own shape.

    The target is free (any field names, nested with ``fields``, ``each`` and ``items``);
    ``None`` sends the canonical payload as it is. ``cards``: the flow's ``card_numbers``.
    """
    policy = CardPolicy.of(cards)
    if spec is None:
        return CompiledMapping(
            entity=None, rules=(), required_fields=frozenset(), whole=True, cards=policy
        )
    compiler = _Compiler(rates or CurrencyRates())
    rules = compiler.object_rules(spec, _AnyFields(), "")
    if compiler.problems:
        raise MappingCompileError(compiler.problems)
    return CompiledMapping(
        entity=None, rules=tuple(rules), required_fields=frozenset(), cards=policy
    )


def compile_mapping(
    spec: MappingSpec | None,
    entity: EntitySpec,
    rates: CurrencyRates | None = None,
    cards: CardSetting = "reject",
) -> CompiledMapping:
    """Compile ``spec`` for ``entity``; ``None`` maps every entity field from the same name.

    ``cards`` is the flow's ``card_numbers`` policy (key and guarded fields always reject).
    Raises :class:`MappingCompileError` with every problem found.
    """
    policy = CardPolicy.of(cards, entity.card_number_guarded)
    compiler = _Compiler(rates or CurrencyRates())
    if spec is None:
        identity: MappingSpec = {name: name for name in entity.fields}
        rules = compiler.object_rules(identity, entity.fields, "")
        required: frozenset[str] = frozenset()
    else:
        rules = compiler.object_rules(spec, entity.fields, "")
        required = _required_fields(spec)
    if compiler.problems:
        raise MappingCompileError(compiler.problems)
    return CompiledMapping(
        entity=entity,
        rules=tuple(rules),
        required_fields=required,
        cards=policy,
        columns=dict(compiler.columns),
    )
