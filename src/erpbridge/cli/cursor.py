"""``erpbridge cursor``: see and reset the cursors of IN flows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from erpbridge.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    actor,
    console,
    fail,
    known_flow,
    load,
    store,
)

if TYPE_CHECKING:
    from erpbridge.config.loader import LoadedConfig

__all__ = ["cursor_app", "parse_value"]

cursor_app = typer.Typer(help="Cursors of IN flows: show, reset.", no_args_is_help=True)


def parse_value(text: str) -> Any:
    """``--to``'s value: JSON when it parses (a number, an object as ``show`` prints it), else
    the text itself (a timestamp, a token)."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _in_flow(config: LoadedConfig, name: str) -> None:
    known_flow(config, name)
    if config.flow(name).direction != "in":
        raise fail(f"flow {name!r} is an OUT flow: only IN flows have a cursor", 2)


def _shown(value: Any) -> str:
    import orjson

    return "" if value is None else orjson.dumps(value).decode()


@cursor_app.command(name="show")
def show(
    flow: Annotated[str | None, typer.Argument(help="One IN flow (default: all).")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Show the stored cursor of each IN flow (JSON), an unfinished full pass, the run that
    wrote it and when; an empty cursor means the next run reads everything."""
    from erpbridge.store.cursors import cursor_views

    loaded = load(config)
    if flow is not None:
        _in_flow(loaded, flow)
    names = [flow] if flow else [f.name for f in loaded.model.flows if f.direction == "in"]
    engine = store(loaded)
    with engine.connect() as conn:
        views = cursor_views(conn, names)
    table = Table("flow", "cursor", "full pass at", "run", "updated")
    for view in views:
        updated = "" if view.updated_at is None else f"{view.updated_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(
            view.flow,
            _shown(view.value) or "(none: reads everything)",
            _shown(view.full_pass),
            "" if view.run_id is None else str(view.run_id),
            updated,
        )
    console.print(table)


@cursor_app.command(name="reset")
def reset(
    flow: Annotated[str, typer.Argument(help="The IN flow.")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="The new cursor (JSON as `cursor show` prints it, or plain text)."
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Reset an IN flow's cursor: to nothing (the next run reads everything) or --to VALUE.
    Refused (exit 75) while a run of the flow is going; written to the admin audit."""
    from erpbridge.errors import FlowBusy
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.cursors import reset_cursor

    loaded = load(config)
    _in_flow(loaded, flow)
    engine = store(loaded)
    value = None if to is None else parse_value(to)
    try:
        with engine.begin() as conn:
            before, after = reset_cursor(conn, flow, value)
    except FlowBusy as exc:
        raise fail(f"{exc}; reset its cursor once the run has ended", 75) from None
    detail = {"before": before.value, "full_pass": before.full_pass, "after": after.value}
    record_action(engine, actor(), None, "flow.cursor_reset", flow, detail=detail)
    console.print(
        f"flow {flow}: cursor {_shown(before.value) or '(none)'} -> "
        f"{_shown(after.value) or '(none: the next run reads everything)'}",
        highlight=False,
        markup=False,
    )
