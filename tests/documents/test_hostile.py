"""Hostile templates: sandbox escapes and templates that would spend the worker's time or memory
are stopped quickly with the template's file, line and the cause (erpbridge.documents.limits)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from erpbridge.documents.sandbox import TemplateProblem, compile_template, render_template

NESTED = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
FOUR_DEEP = "".join(f"{{% for {v} in items %}}" for v in "abcd") + "{% endfor %}" * 4
DOUBLING = (
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"
)

HOSTILE = {
    # Sandbox escapes: the classic routes to os.system through Python's object graph.
    "class": ("{{ ''.__class__ }}", ":1: refused by the sandbox: access to attribute '__class__'"),
    "subclasses": (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        ":1: refused by the sandbox: access to attribute '__class__'",
    ),
    "globals": ("{{ cycler.__init__.__globals__ }}", ":1: refused by the sandbox"),
    "context": ("{{ self._TemplateReference__context }}", ":1: refused by the sandbox"),
    "mutation": ("{% set l = [1] %}{{ l.append(2) }}", ":1: refused by the sandbox"),
    "format_escape": ("{{ '{0.__class__}'.format(1) }}", ":1: refused by the sandbox"),
    # Time: loops.
    "nested_range": (NESTED, ":1: stopped: loops ran more than 1,000,000 steps"),
    "nested_data": (FOUR_DEEP, ":1: stopped: loops ran more than 1,000,000 steps"),
    "range": ("{{ range(10**9) | list }}", ":1: stopped: an argument of 1,000,000,000"),
    "recursion": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ": stopped: macros call themselves too deeply",
    ),
    # Memory: values that grow past 5 million characters.
    "repeat": ("{{ 'x' * 10**10 }}", ":1: stopped: repeating 1 characters or items 10,000,000,000"),
    "power": ("{{ 2 ** 100000000 }}", ":1: stopped: a power of more than 100,000 bits"),
    "ljust": ("{{ 'x'.ljust(10**9) }}", ":1: stopped: an argument of 1,000,000,000, over the"),
    "center": ("{{ 'x' | center(10**9) }}", ":1: stopped: an argument of 1,000,000,000"),
    "percent": ("{{ '%0999999999d' % 1 }}", ":1: stopped: a format width or precision of six"),
    "format_filter": ("{{ '%0999999999d' | format(1) }}", ":1: stopped: a format width"),
    "str_format": ("{{ '{:>999999999}'.format(1) }}", ":1: stopped: a format width"),
    "doubling": (DOUBLING, ":1: stopped: a value of more than 5,000,000 characters"),
    "unrolled": (
        "{% set s = 'abcdefgh' * 1000 %}" + "{% set s = s ~ s %}" * 40,
        ":1: stopped: a value of more than 5,000,000 characters",
    ),
    "join": (
        "{{ ('x' * 1000000).join(range(100000) | map('string')) }}",
        ":1: stopped: joining 100,000 items with 1,000,000 characters",
    ),
    "replace": (
        "{{ ('a' * 100000) | replace('a', 'b' * 100000) }}",
        ":1: stopped: a replacement that makes more than 5,000,000",
    ),
    "output": (
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        ": stopped: wrote more than 20,000,000 characters",
    ),
    "lipsum": ("{{ lipsum(100000) }}", ":1: undefined: 'lipsum' is undefined"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_template_is_stopped_quickly_with_place_and_cause(
    tmp_path: Path, case: str
) -> None:
    body, expected = HOSTILE[case]
    (tmp_path / "hostile.j2").write_text(body, "utf-8")
    started = time.monotonic()
    template = compile_template(tmp_path, "hostile.j2", autoescape=False)
    with pytest.raises(TemplateProblem) as caught:
        render_template(template, "hostile.j2", {"items": list(range(100))})
    assert time.monotonic() - started < 5
    assert str(caught.value).startswith(f"hostile.j2{expected}"), str(caught.value)


def test_what_documents_need_stays_within_the_limits(tmp_path: Path) -> None:
    body = (
        "{% for line in items %}{{ line }};{% endfor %}|{{ '%05.2f' % 3.14159 }}|"
        "{{ ', '.join(['a', 'b']) }}|{{ 2 ** 64 }}|{{ '-' * 80 }}|{{ 'x' | center(9) }}|"
        "{{ '{:>8}'.format('r') }}|{{ 'a-b' | replace('-', '+') }}"
    )
    (tmp_path / "fine.j2").write_text(body, "utf-8")
    template = compile_template(tmp_path, "fine.j2", autoescape=False)
    out = render_template(template, "fine.j2", {"items": list(range(3))})
    assert out == (f"0;1;2;|03.14|a, b|18446744073709551616|{'-' * 80}|    x    |       r|a+b")
