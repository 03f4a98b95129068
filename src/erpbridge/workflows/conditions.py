"""Conditions over a record's fields: a small, safe expression form, checked when loaded.

A condition is one Python-like expression over the record's fields, e.g.
``amount > 0 and amount <= 5000``, ``country in ['DE', 'AT']``, ``approver != null``,
``customer.country == 'DE'``. It is parsed with :mod:`ast` and only these nodes are accepted:
``and``/``or``/``not``, comparisons (``== != < <= > >= in`` ``not in``, ``is null``), field
names (dotted into objects), and constants (text, numbers, ``true``/``false``/``null``, lists of
them). There are no calls, attributes of values, arithmetic or subscripts, so a condition can only
read the record: it can never run code. Names are checked against the entity's fields (with a
"did you mean"), and a text compared with a field that has ``choices`` must be one of them.

Evaluation never raises: a missing field is ``null``; numbers and decimal text compare as
decimals; an ordering comparison between values that do not order (``null < 3``) is false.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from erpbridge.mapping.paths import getter
from erpbridge.model.fields import FieldSpec
from erpbridge.suggest import did_you_mean

__all__ = ["Condition", "ConditionError", "compile_condition"]

_CONSTANTS = {"null": None, "true": True, "false": False}

Evaluate = Callable[[Mapping[str, Any]], Any]


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message says where in it and why."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: call it with a record's payload for ``True`` or ``False``."""

    text: str
    #: The field paths it reads, in order of appearance (for messages: "amount is 7200").
    paths: tuple[str, ...]
    _evaluate: Evaluate

    def __call__(self, payload: Mapping[str, Any]) -> bool:
        return bool(self._evaluate(payload))

    def explain(self, payload: Mapping[str, Any]) -> str:
        """The values the condition read, e.g. ``amount is 7200, currency is 'EUR'``."""
        return ", ".join(f"{p} is {_shown(getter(p)(payload))}" for p in self.paths)


def _shown(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def compile_condition(text: str, fields: Mapping[str, FieldSpec] | None = None) -> Condition:
    """Compile ``text``; with ``fields`` (the entity's), names and choices are checked too.

    Raise :class:`ConditionError` naming the offending part.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid condition ({exc.msg}): {text.strip()!r}") from None
    paths: list[str] = []
    evaluate = _Compiler(fields, paths).node(tree.body)
    return Condition(text, tuple(dict.fromkeys(paths)), evaluate)


class _Compiler:
    def __init__(self, fields: Mapping[str, FieldSpec] | None, paths: list[str]) -> None:
        self.fields = fields
        self.paths = paths

    def node(self, node: ast.expr) -> Evaluate:
        if isinstance(node, ast.BoolOp):
            parts = [self.node(value) for value in node.values]
            if isinstance(node.op, ast.And):
                return lambda p: all(part(p) for part in parts)
            return lambda p: any(part(p) for part in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.node(node.operand)
            return lambda p: not inner(p)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name | ast.Attribute):
            path = self.path(node)
            if path in _CONSTANTS:
                value = _CONSTANTS[path]
                return lambda _p: value
            return getter(path)
        return self.constant_of(node)

    def constant_of(self, node: ast.expr) -> Evaluate:
        value = _constant(node)
        return lambda _p: value

    def path(self, whole: ast.expr) -> str:
        parts: list[str] = []
        node = whole
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            raise ConditionError(f"{ast.unparse(whole)!r} is not allowed: an attribute of a value")
        parts.append(node.id)
        path = ".".join(reversed(parts))
        if path in _CONSTANTS or node.id in ("None", "True", "False"):
            return {"None": "null", "True": "true", "False": "false"}.get(path, path)
        self._check_path(path)
        self.paths.append(path)
        return path

    def _check_path(self, path: str) -> None:
        parts = path.split(".")
        level = self.fields
        for i, part in enumerate(parts):
            if level is None:
                return  # no entity to check against, or below an object without fields
            if part not in level:
                hint = did_you_mean(part, level)
                raise ConditionError(f"unknown field {part!r} in {path!r}{hint}")
            spec = level[part]
            if spec.type in ("list", "json"):
                return
            if spec.type == "object":
                level = spec.fields
            elif i < len(parts) - 1:
                raise ConditionError(f"{part!r} is a {spec.type}, it has no fields ({path!r})")

    def compare(self, node: ast.Compare) -> Evaluate:
        operands = [node.left, *node.comparators]
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not _is_null(right):
                raise ConditionError("'is' and 'is not' only compare with null")
        for left, right in itertools.pairwise(operands):
            self._check_choice(left, right)
            self._check_choice(right, left)
        values = [self.node(o) for o in operands]
        steps = [(_operator(op), get) for op, get in zip(node.ops, values[1:], strict=True)]
        first = values[0]

        def evaluate(payload: Mapping[str, Any]) -> bool:
            left = first(payload)
            for test, get in steps:
                right = get(payload)
                if not test(left, right):
                    return False
                left = right
            return True

        return evaluate

    def _check_choice(self, name: ast.expr, other: ast.expr) -> None:
        """``status == 'aproved'``: a text compared with a field of ``choices`` must be one."""
        if self.fields is None or not isinstance(name, ast.Name) or name.id not in self.fields:
            return
        choices = self.fields[name.id].choices
        if choices is None:
            return
        texts: list[ast.expr] = [other]
        if isinstance(other, ast.List | ast.Tuple | ast.Set):
            texts = list(other.elts)
        for text in texts:
            value = text.value if isinstance(text, ast.Constant) else None
            if isinstance(value, str) and value not in choices:
                hint = did_you_mean(value, choices)
                raise ConditionError(
                    f"{value!r} is not a choice of {name.id!r}{hint} "
                    f"(choices: {', '.join(choices)})"
                )


def _is_null(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None
    return isinstance(node, ast.Name) and node.id in ("null", "None")


def _constant(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return tuple(_constant(element) for element in node.elts)
    raise ConditionError(
        f"{ast.unparse(node)!r} is not allowed: use field names, constants, comparisons, "
        "and, or, not"
    )


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    """The two values in one kind: numbers (and decimal text) as decimals, else as they are."""
    if isinstance(left, int | float | Decimal) or isinstance(right, int | float | Decimal):
        a, b = _number(left), _number(right)
        return None if a is None or b is None else (a, b)
    if type(left) is type(right) and left is not None:
        return left, right
    return None


def _equal(left: Any, right: Any) -> bool:
    pair = _comparable(left, right)
    return _compare_equal(*pair) if pair is not None else _compare_equal(left, right)


def _member(left: Any, right: Any) -> bool:
    if isinstance(right, tuple | list):
        return any(_equal(left, item) for item in right)
    if isinstance(right, str) and isinstance(left, str):
        return left in right
    return False


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        pair = _comparable(left, right)
        if pair is None:
            return False
        try:
            return test(*pair)
        except TypeError:
            return False

    return compare


_OPERATORS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: _equal,
    ast.NotEq: lambda a, b: not _equal(a, b),
    ast.Lt: _ordered(lambda a, b: a < b),
    ast.LtE: _ordered(lambda a, b: a <= b),
    ast.Gt: _ordered(lambda a, b: a > b),
    ast.GtE: _ordered(lambda a, b: a >= b),
    ast.In: _member,
    ast.NotIn: lambda a, b: not _member(a, b),
    ast.Is: lambda a, b: a is None and b is None,
    ast.IsNot: lambda a, b: not (a is None and b is None),
}


def _operator(op: ast.cmpop) -> Callable[[Any, Any], bool]:
    return _OPERATORS[type(op)]


def _compare_equal(left: Any, right: Any) -> bool:
    return bool(left == right)
