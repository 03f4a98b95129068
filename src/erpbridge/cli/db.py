"""``erpbridge db``: the hub store's schema (current, upgrade) and its backups (backup, restore)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, console, fail, load
from erpbridge.errors import ErpbridgeError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from erpbridge.config.loaded import LoadedConfig

__all__ = ["db_app"]

db_app = typer.Typer(
    help="The hub store: schema version and upgrade, backup and restore.", no_args_is_help=True
)


def _engine(config: LoadedConfig) -> Engine:
    """The store's engine, its schema not checked: these commands are how a mismatch is mended."""
    from erpbridge.store import create_hub_engine

    try:
        return create_hub_engine(config.database_url())
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None


def _masked(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@db_app.command()
def current(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Print the store's schema revision beside this erpbridge's; exit 1 when they differ."""
    from erpbridge.store.database import schema_state

    engine = _engine(load(config))
    try:
        state = schema_state(engine)
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    where = _masked(engine)
    if state.at_head:
        console.print(f"{where}: schema {state.head} (current)", highlight=False)
        return
    if state.current is None:
        console.print(f"{where}: new store; the first command creates schema {state.head}")
        return
    verdict = "run 'erpbridge db upgrade'" if state.older else "newer than this erpbridge"
    console.print(f"{where}: schema {state.current}, this erpbridge {state.head}: {verdict}")
    raise typer.Exit(1)


@db_app.command()
def upgrade(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Upgrade the store to this erpbridge's schema (stop the hub's processes first)."""
    from erpbridge.store.database import migrate, schema_state

    engine = _engine(load(config))
    try:
        before = schema_state(engine)
        if before.current is not None and not before.known:
            raise fail(
                f"{_masked(engine)} has schema {before.current}, newer than this erpbridge "
                f"({before.head}): nothing to upgrade; run the erpbridge that wrote it"
            )
        if before.at_head:
            console.print(f"{_masked(engine)}: already at schema {before.head}", highlight=False)
            return
        migrate(engine)
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    start = before.current or "an empty store"
    console.print(f"{_masked(engine)}: upgraded from {start} to {before.head}", highlight=False)


@db_app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="A new file to write the backup to.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Back the store up while the hub runs (SQLite backup API, or pg_dump for PostgreSQL)."""
    from erpbridge.store.backup import backup as copy

    engine = _engine(load(config))
    try:
        copied = copy(engine, dest)
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    schema = f", schema {copied.schema}" if copied.schema else ""
    console.print(f"backed {_masked(engine)} up to {dest} ({copied.size} bytes{schema})")


@db_app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A file written by 'erpbridge db backup'.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a store that holds data already.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Restore a backup into the store (stop the hub's processes first); the flows then resume
    from the cursors the backup holds."""
    from erpbridge.store.backup import restore as bring_back

    loaded = load(config)
    try:
        copied = bring_back(loaded.database_url(), source, force=force)
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None
    schema = f" (schema {copied.schema})" if copied.schema else ""
    console.print(f"restored {source}{schema}; run 'erpbridge db current' to check the schema")
