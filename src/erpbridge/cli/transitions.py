"""``erpbridge transition``: fire a workflow transition on a record; ``erpbridge transitions``:
a record's transition log. The person at the command line has the hub store's credentials, so
they act with every scope and role (``--actor`` names them in the log)."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, console, fail, load, store

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy import Row

__all__ = ["show_transitions", "transition", "transition_table"]


def _fields(pairs: list[str]) -> dict[str, str]:
    fields = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise fail(f"--field {pair!r}: write NAME=VALUE", 2)
        fields[name] = value
    return fields


def transition(
    entity: Annotated[str, typer.Argument(help="Entity name.")],
    key: Annotated[str, typer.Argument(help="The record's key.")],
    name: Annotated[str, typer.Argument(help="The transition to fire.")],
    config: ConfigOption = DEFAULT_CONFIG,
    reason: Annotated[str | None, typer.Option(help="Why (logged; some need one).")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who fires it, for the log (default: the OS user).")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="NAME=VALUE set with the transition (repeatable)."),
    ] = None,
) -> None:
    """Fire a workflow transition on a record (checked like the API's; deliveries queued)."""
    from erpbridge.engine.transitions import (
        CardNumberInReason,
        IdempotencyKeyReused,
        InvalidFields,
        RecordNotFound,
        StaleVersion,
        fire_transition,
    )
    from erpbridge.workflows.machine import ROLE_RANK, Actor, TransitionRefused

    loaded = load(config)
    engine = store(loaded)
    who = Actor("user", actor or getpass.getuser(), frozenset({"admin"}), frozenset(ROLE_RANK))
    try:
        fired = fire_transition(
            engine, loaded, entity, key, name, who, reason=reason, fields=_fields(field or [])
        )
    except (
        TransitionRefused,
        CardNumberInReason,
        StaleVersion,
        InvalidFields,
        IdempotencyKeyReused,
        RecordNotFound,
    ) as exc:
        raise fail(f"{entity} {key}: {exc}", 1) from None
    finally:
        engine.dispose()
    console.print(
        f"{entity} {key}: {fired.transition} {fired.before} → {fired.after} (version "
        f"{fired.version}), {fired.deliveries} delivery(ies) queued"
    )


def show_transitions(
    entity: Annotated[str, typer.Argument(help="Entity name.")],
    key: Annotated[str, typer.Argument(help="The record's key.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Show a record's transition log: every status change, who, why, when."""
    from erpbridge.store.read import EVERYTHING, record_transitions

    loaded = load(config)
    engine = store(loaded)
    try:
        with engine.connect() as conn:
            rows = record_transitions(conn, EVERYTHING, entity, key)
    finally:
        engine.dispose()
    if rows is None:
        raise fail(f"no {entity} record with key {key!r}", 1)
    console.print(transition_table(f"{entity} {key}: {len(rows)} status change(s)", rows))


def transition_table(title: str, rows: Sequence[Row[Any]]) -> Table:
    """Transition log rows as a table (``transitions``, and ``records --key``)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("version", "at", "from", "to", "transition", "actor", "reason", "run", "note"):
        table.add_column(column)
    for t in rows:
        table.add_row(
            str(t.version),
            f"{t.at:%Y-%m-%d %H:%M:%S}",
            t.from_state or "",
            t.to_state,
            t.transition or "",
            f"{t.actor_kind} {t.actor}",
            t.reason or "",
            "" if t.run_id is None else str(t.run_id),
            t.note or "",
        )
    return table
