"""The SQL query guard: accept one read-only SELECT, refuse anything that could write.

It refuses early and with a clear message; the read-only transaction of the SQL transport
remains the real guard.
"""

from __future__ import annotations

import itertools
import re
from functools import cache

__all__ = ["check_select"]

_WRITE_WORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|INTO|CREATE|ALTER|DROP|TRUNCATE|GRANT|REVOKE"
    r"|CALL|EXEC|EXECUTE)\b",
    re.IGNORECASE,
)


def check_select(query: str) -> str:
    """``query`` without a trailing ``;`` if it is one read-only SELECT; else a ValueError.

    Dialects quote and comment differently, so the text must pass under each convention
    (backslash escapes, ``#`` comments, ``[names]``, ``$$`` strings). The read-only transaction
    remains the real guard; this one refuses early, with a clear message.
    """
    query = query.strip()
    while query.endswith(";"):  # a trailing `;` is habit, not a second statement
        query = query[:-1].rstrip()
    for flags in itertools.product((False, True), repeat=4):
        problem = _select_problem(_code_only(query, *flags))
        if problem:
            raise ValueError(f"{problem}; a sql channel is read-only")
    return query


@cache
def _quoted(backslash: bool, hashes: bool, brackets: bool, dollars: bool) -> re.Pattern[str]:
    body = r"\\.|{q}{q}|[^{q}\\]" if backslash else r"{q}{q}|[^{q}]"
    parts = [r"--[^\n]*", r"/\*.*?\*/", r"`(?:``|[^`])*`"]
    parts += [f"{q}(?:{body.format(q=q)})*{q}" for q in ("'", '"')]
    if hashes:
        parts.append(r"#[^\n]*")
    if brackets:
        parts.append(r"\[[^\]]*\]")
    if dollars:
        parts.append(r"\$(?P<tag>[A-Za-z_]\w*|)\$.*?\$(?P=tag)\$")
    return re.compile("|".join(parts), re.DOTALL)


def _code_only(sql: str, backslash: bool, hashes: bool, brackets: bool, dollars: bool) -> str:
    def blank(match: re.Match[str]) -> str:
        text = match.group()
        # PostgreSQL nests comments and MySQL runs /*! … */: both would hide code from us.
        if text.startswith("/*") and (text.startswith("/*!") or "/*" in text[2:-2]):
            raise ValueError("nested or executable /* comments are not allowed in a query")
        return " "

    return _quoted(backslash, hashes, brackets, dollars).sub(blank, sql)


def _select_problem(code: str) -> str | None:
    if re.search(r"['\"`]|/\*", code):
        return "the query has an unterminated quote or comment"
    first = re.match(r"[\s(]*(\w+)", code)
    if first is None or first.group(1).lower() not in ("select", "with"):
        return "only SELECT or WITH … SELECT queries are allowed"
    if ";" in code:
        return "only one statement is allowed (found `;`)"
    if word := _WRITE_WORDS.search(code):
        return f"{word.group(1).upper()} is not allowed in a query (quote it if it is a name)"
    depth = 0
    for char in code:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:  # the query is wrapped in a subquery and must not close it
            return "unbalanced parentheses"
    return "unbalanced parentheses" if depth else None
