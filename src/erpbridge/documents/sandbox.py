"""The sandboxed Jinja2 environment every document template runs in, and its errors.

Templates come from configuration authors, not from the hub's code, so they run in Jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`: no attribute starting with ``_``, no
mutation of the data, bounded ``range``. :class:`~jinja2.StrictUndefined` makes a missing
variable an error instead of an empty string on an invoice. On top of the sandbox, every loop,
operator, call, filter and output goes through the cost checks of :mod:`~.limits` (a template
that would loop for hours or build gigabytes stops early). Every failure becomes a
:class:`TemplateProblem` naming the template file, the line and the cause.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from erpbridge.documents import limits
from erpbridge.documents.limits import LimitExceeded

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


# Names of the two guards the template's syntax tree is rewritten to call (see _Guarded).
_COUNTED = "erpbridge_counted"
_SIZED = "erpbridge_sized"


class _Guarded(NodeTransformer):
    """Every ``{% for %}`` iterates through :func:`~.limits.counted` and every ``~`` result
    passes :func:`~.limits.sized`: the two ways a template spends time or memory that the
    sandbox's hooks (operators, calls, attributes) do not see."""

    def _wrap(self, guard: str, node: nodes.Node) -> nodes.Call:
        return nodes.Call(nodes.Name(guard, "load"), [node], [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = self._wrap(_COUNTED, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        self.generic_visit(node)
        return self._wrap(_SIZED, node)


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter) with its arguments and result checked against :mod:`~.limits`."""
    skip = 2 if _PassArg.from_obj(func) else 1  # the context (when passed) and the value

    @functools.wraps(func)  # keeps Jinja2's pass_context/pass_eval_context marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        limits.check_arguments(args[skip:], kwargs)
        value = args[skip - 1] if len(args) >= skip else None
        if name == "replace" and len(args) >= skip + 2:
            limits.check_replace(value, args[skip], args[skip + 1])
        elif name == "join" and isinstance(value, list | tuple):
            limits.check_join(args[skip] if len(args) > skip else kwargs.get("d", ""), value)
        elif name == "format" and isinstance(value, str):
            limits.check_format(value)
        elif name == "indent" and isinstance(value, str):
            width = args[skip] if len(args) > skip else kwargs.get("width", 4)
            limits.check_join(width if isinstance(width, str) else " " * width, value.splitlines())
        return limits.sized(func(*args, **kwargs))

    return guarded


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox with the cost checks of :mod:`~.limits` on every operator, call and filter,
    and the syntax tree of each template rewritten by :class:`_Guarded`."""

    # Intercepted, these are also never folded at compile time ('x' * 10**10 in a template
    # would otherwise be computed by erpbridge check).
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return limits.sized(super().call_binop(context, operator, left, right))

    def call(
        __self,  # Jinja2's spelling: a keyword argument 'self' passes through
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        limits.check_arguments(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        method = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if method == "join" and args:
                items = list(args[0])
                limits.check_join(owner, items)
                args = (items, *args[1:])
            elif method == "replace" and len(args) >= 2:
                limits.check_replace(owner, args[0], args[1])
        return limits.sized(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        limits.tick(0)
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            limits.check_format(obj)  # the sandbox hands out a wrapper, not the bound method
        return super().getattr(obj, attribute)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded = _Guarded().visit(tree)
        assert isinstance(guarded, nodes.Template)
        return guarded


def _environment(
    base_dir: Path, autoescape: bool, finalize: Callable[[Any], Any] | None
) -> ImmutableSandboxedEnvironment:
    env = _Environment(
        loader=jinja2.FileSystemLoader(base_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        finalize=finalize,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update({"money": _money, "ymd": _ymd, "csv": _csv_cell})
    env.filters = {name: _guarded_filter(name, func) for name, func in env.filters.items()}
    del env.globals["lipsum"]  # a page of random text per call: nothing a document needs
    env.globals.update({_COUNTED: limits.counted, _SIZED: limits.sized})
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
    """Render ``template`` within the limits of :mod:`~.limits`; :class:`TemplateProblem` for an
    undefined name, a sandbox refusal, a limit reached or any other error the template raises."""
    chunks: list[str] = []
    try:
        with limits.budget() as spent:
            for chunk in template.generate(context):
                spent.write(chunk)
                chunks.append(chunk)
    except SecurityError as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"refused by the sandbox: {exc}") from None
    except LimitExceeded as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"stopped: {exc}") from None
    except RecursionError:
        raise TemplateProblem(name, None, "stopped: macros call themselves too deeply") from None
    except MemoryError:
        raise TemplateProblem(name, None, "stopped: the template ran out of memory") from None
    except jinja2.UndefinedError as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"undefined: {exc}") from None
    except jinja2.TemplateError as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, str(exc)) from None
    except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
        line = _template_line(template, exc.__traceback__)
        raise TemplateProblem(name, line, f"{type(exc).__name__}: {exc}") from None
    return "".join(chunks)
