"""Templates of the back office: one Jinja2 environment, autoescaped, with the filters pages use.

User data is never marked safe: every value a record, a channel or an error brings is escaped.
Every page answers with a strict Content-Security-Policy (scripts and styles from ``/ui/static``
only) and ``Cache-Control: no-store`` (pages show data a shared cache must not keep).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from erpbridge.api.redact import without_paths

__all__ = ["CSP", "NO_STORE", "ago", "render"]

#: Scripts, styles and images from this origin only; forms post here only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
NO_STORE = {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ago(value: datetime | None, at: datetime | None = None) -> str:
    """``value`` as "3 min ago" (or "in 2 min"); "—" when there is none."""
    moment = _utc(value)
    if moment is None:
        return "—"
    seconds = ((at or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400 * 2:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def _exact(value: datetime | None) -> str:
    moment = _utc(value)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _pretty(value: Any) -> str:
    """A JSON value (or stored JSON text) indented for reading."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _for(text: str | None, user: Any) -> str:
    """An error text as ``user`` may see it: local paths only for admins (as in the API)."""
    if not text:
        return ""
    return text if getattr(user, "role", None) == "admin" else without_paths(text)


_env = Environment(
    loader=PackageLoader("erpbridge.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(ago=ago, exact=_exact, duration=_duration, pretty=_pretty, shown_to=_for)


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """``template`` rendered with ``context`` plus the request's session (``me``, ``csrf``)."""
    state = request.state
    values = {
        "request": request,
        "me": getattr(state, "ui_user", None),
        "csrf": getattr(state, "ui_csrf", ""),
        "notice": request.query_params.get("notice"),
        "notice_failed": request.query_params.get("failed") == "1",
        "path": request.url.path,
        **context,
    }
    html = _env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)
