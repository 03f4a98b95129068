"""What one document template may cost: loop steps, run time, the size of what it builds.

Jinja2's sandbox stops a template from reaching the hub's objects, but not from spending the
worker's time and memory: ``{% for i in range(100000) %}{% for j in range(100000) %}``,
``{{ 'x' * 10**10 }}`` or ``{{ 9**9**9 }}`` are valid and harmless-looking. The sandbox of
:mod:`~.sandbox` routes loops, operators, calls and filters through the checks here, within a
:func:`budget` opened for each rendering, so such a template stops early with
:class:`LimitExceeded` naming the limit, instead of hanging the worker or exhausting its memory.
The limits are far above what an invoice, a credit note or a letter needs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_ARGUMENT",
    "MAX_INT_BITS",
    "MAX_OUTPUT",
    "MAX_SECONDS",
    "MAX_SIZE",
    "MAX_STEPS",
    "Budget",
    "LimitExceeded",
    "budget",
    "check_arguments",
    "check_binop",
    "check_format",
    "check_join",
    "check_replace",
    "counted",
    "sized",
    "tick",
]

#: Loop iterations per document, all loops together.
MAX_STEPS = 1_000_000
#: Wall-clock seconds per document (checked at every loop step, call, filter and output).
MAX_SECONDS = 10.0
#: Characters (or items) of any one value a template builds.
MAX_SIZE = 5_000_000
#: Characters a template writes.
MAX_OUTPUT = 20_000_000
#: An integer argument of a call or filter (a width, a count).
MAX_ARGUMENT = 100_000
#: Bits of an integer a template computes.
MAX_INT_BITS = 100_000

# A width or precision of six digits or more in a format string ('%0999999d', '{:>999999}').
_HUGE_WIDTH = re.compile(r"\d{6,}")


class LimitExceeded(Exception):
    """A template went over one of the limits of this module; the message names it."""


@dataclass
class Budget:
    """What is left of one rendering's steps, and when its time is up."""

    deadline: float
    steps: int = MAX_STEPS
    output: int = MAX_OUTPUT

    def tick(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise LimitExceeded(f"loops ran more than {MAX_STEPS:,} steps")
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"ran longer than {MAX_SECONDS:g} s")

    def write(self, chunk: str) -> None:
        self.output -= len(chunk)
        if self.output < 0:
            raise LimitExceeded(f"wrote more than {MAX_OUTPUT:,} characters")
        self.tick(0)


_CURRENT: ContextVar[Budget | None] = ContextVar("erpbridge_template_budget", default=None)


@contextmanager
def budget() -> Iterator[Budget]:
    """A fresh budget for one rendering (the checks below charge it)."""
    current = Budget(time.monotonic() + MAX_SECONDS)
    token = _CURRENT.set(current)
    try:
        yield current
    finally:
        _CURRENT.reset(token)


def tick(steps: int = 1) -> None:
    """Charge ``steps`` loop steps and check the time (nothing outside a :func:`budget`)."""
    current = _CURRENT.get()
    if current is not None:
        current.tick(steps)


def counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable`` with each step charged: every ``{% for %}`` of a template iterates this."""
    for item in iterable:
        tick()
        yield item


def sized(value: Any) -> Any:
    """``value``, when it is not larger than :data:`MAX_SIZE` (or :data:`MAX_INT_BITS`)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"a number of more than {MAX_INT_BITS:,} bits")
    elif isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_SIZE:
        raise LimitExceeded(f"a value of more than {MAX_SIZE:,} characters or items")
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` when its result would be over the limits, before it is
    computed (a huge repetition or power would take the memory or time first)."""
    tick(0)
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and ints and right > 0:
        if max(left.bit_length(), 1) * right > MAX_INT_BITS:
            raise LimitExceeded(f"a power of more than {MAX_INT_BITS:,} bits ({left} ** {right})")
    elif operator == "*":
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"a product of more than {MAX_INT_BITS:,} bits")
        for seq, count in ((left, right), (right, left)):
            if _length(seq) and isinstance(count, int) and _length(seq) * count > MAX_SIZE:
                raise LimitExceeded(
                    f"repeating {_length(seq):,} characters or items {count:,} times "
                    f"makes more than {MAX_SIZE:,}"
                )
    elif operator == "+" and _length(left) + _length(right) > MAX_SIZE:
        raise LimitExceeded(f"a value of more than {MAX_SIZE:,} characters or items")
    elif operator == "%" and isinstance(left, str):
        check_format(left)


def check_format(text: str) -> None:
    """Refuse a format string with a width or precision of six digits (``%0999999d``)."""
    if _HUGE_WIDTH.search(text):
        raise LimitExceeded(f"a format width or precision of six digits or more in {text[:40]!r}")


def check_arguments(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse an integer argument over :data:`MAX_ARGUMENT` (``'x'.ljust(10**9)``)."""
    tick(0)
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ARGUMENT:
            raise LimitExceeded(f"an argument of {value:,}, over the limit of {MAX_ARGUMENT:,}")


def check_join(separator: Any, items: Sized) -> None:
    """Refuse a join whose separators alone would be over :data:`MAX_SIZE`."""
    if _length(separator) * len(items) > MAX_SIZE:
        raise LimitExceeded(
            f"joining {len(items):,} items with {_length(separator):,} characters between "
            f"them makes more than {MAX_SIZE:,}"
        )


def check_replace(text: Any, old: Any, new: Any) -> None:
    """Refuse a replacement whose result would be over :data:`MAX_SIZE`."""
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        return
    count = text.count(old) if old else len(text) + 1
    if len(text) + count * (len(new) - len(old)) > MAX_SIZE:
        raise LimitExceeded(f"a replacement that makes more than {MAX_SIZE:,} characters")
