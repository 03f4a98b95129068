"""The sandboxed Jinja2 environment every document template runs in, and its errors.

Templates come from configuration authors, not from the hub's code, so they run in Jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`: no attribute starting with ``_``, no
mutation of the data, bounded ``range``. :class:`~jinja2.StrictUndefined` makes a missing
variable an error instead of an empty string on an invoice. Every failure becomes a
:class:`TemplateProblem` naming the template file, the line and the cause.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["TemplateProblem", "compile_template", "render_template"]


class TemplateProblem(Exception):
    """A template that does not compile or render: file, line and cause."""

    def __init__(self, template: str, line: int | None, cause: str) -> None:
        self.template = template
        self.line = line
        self.cause = cause
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {cause}")


def _money(value: Any, places: int = 2) -> str:
    """A decimal amount with ``places`` decimals, rounded half up; ``12.5`` → ``12.50``."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"money: {value!r} is not a number") from None
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding="ROUND_HALF_UP"))


def _ymd(value: Any) -> str:
    """A date as ``CCYYMMDD`` (EDIFACT format 102) from a date or an ISO text."""
    if isinstance(value, datetime | date):
        return value.strftime("%Y%m%d")
    return date.fromisoformat(str(value)[:10]).strftime("%Y%m%d")


def _csv_cell(value: Any, delimiter: str = ",") -> str:
    """One CSV cell, quoted when it holds the delimiter, a quote or a line break."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow([value])
    return out.getvalue()


def _environment(
    base_dir: Path, autoescape: bool, finalize: Callable[[Any], Any] | None
) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(base_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        finalize=finalize,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update({"money": _money, "ymd": _ymd, "csv": _csv_cell})
    return env


def compile_template(
    base_dir: Path,
    name: str,
    *,
    autoescape: bool,
    finalize: Callable[[Any], Any] | None = None,
) -> jinja2.Template:
    """Load and compile the template file ``name`` (relative to ``base_dir``)."""
    env = _environment(base_dir, autoescape, finalize)
    try:
        return env.get_template(Path(name).as_posix())
    except jinja2.TemplateNotFound as exc:
        missing = exc.name if exc.name != Path(name).as_posix() else None
        cause = f"includes {missing!r}, which" if missing else "the file"
        raise TemplateProblem(name, None, f"{cause} does not exist in {base_dir}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(exc.name or name, exc.lineno, exc.message or "syntax error") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateProblem(name, None, f"cannot read the file: {exc}") from None


def _template_line(template: jinja2.Template, tb: TracebackType | None) -> int | None:
    """The template line that was running when ``tb`` was raised (Jinja2 rewrites tracebacks so
    that template frames carry the template's file name and line)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_template(template: jinja2.Template, name: str, context: Mapping[str, Any]) -> str:
    """Render ``template``; :class:`TemplateProblem` for an undefined name, a sandbox refusal or
    any other error the template raises."""
    try:
        return template.render(context)
    except SecurityError as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"refused by the sandbox: {exc}") from None
    except jinja2.UndefinedError as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"undefined: {exc}") from None
    except jinja2.TemplateError as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, str(exc)) from None
    except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"{type(exc).__name__}: {exc}") from None
