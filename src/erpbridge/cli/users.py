"""``erpbridge users``: the back office's local users (``/ui``), their roles and passwords."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer
from rich.table import Table

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, console, fail, load, store

__all__ = ["users_app"]

users_app = typer.Typer(help="Back-office users: add, passwd, list, remove.", no_args_is_help=True)

#: Read the password from this variable instead of asking (scripts, tests); never an option,
#: which would show it in the process list and the shell's history.
PASSWORD_ENV = "ERPBRIDGE_USER_PASSWORD"  # noqa: S105 - the variable's name, not a password


def _password() -> str:
    given = os.environ.get(PASSWORD_ENV)
    if given is not None:
        return given
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise fail("the two passwords differ; nothing changed", 2)
    return first


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@users_app.command(name="add")
def add(
    name: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    role: Annotated[
        str,
        typer.Option(help="viewer (reads), operator (also acts on flows and deliveries), admin."),
    ] = "viewer",
    channel: Annotated[
        list[str] | None, typer.Option(help="Repeat: only these channels (default: all).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Add a user; asks for the password (or reads ERPBRIDGE_USER_PASSWORD)."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.users import UserError, add_user

    loaded = load(config)
    unknown = sorted(set(channel or []) - set(loaded.model.channels))
    if unknown:
        raise fail(f"no channel named {', '.join(unknown)}", 2)
    engine = store(loaded)
    try:
        user = add_user(engine, name, _password(), role, set(channel) if channel else None)
    except UserError as exc:
        raise fail(str(exc), 2) from None
    detail = {"role": user.role, "channels": sorted(user.channels or [])}
    record_action(engine, _actor(), None, "user.add", user.name, detail=detail)
    console.print(f"user {user.name} added ({user.role}); sign in at /ui/login")


@users_app.command(name="passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="The user.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Set a user's password; their open sessions end."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.users import UserError, set_password

    engine = store(load(config))
    try:
        set_password(engine, name, _password())
    except UserError as exc:
        raise fail(str(exc), 2) from None
    record_action(engine, _actor(), None, "user.passwd", name)
    console.print(f"password of {name} changed; their sessions ended")


@users_app.command(name="remove")
def remove(
    name: Annotated[str, typer.Argument(help="The user.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Remove a user; their open sessions end at once."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.users import remove_user

    engine = store(load(config))
    if not remove_user(engine, name):
        raise fail(f"no user named {name!r}")
    record_action(engine, _actor(), None, "user.remove", name)
    console.print(f"user {name} removed")


@users_app.command(name="list")
def show(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Every user: role, channels, since when (never a password)."""
    from erpbridge.store.users import list_users

    table = Table("name", "role", "channels", "created")
    for u in list_users(store(load(config))):
        channels = ", ".join(sorted(u.channels)) if u.channels is not None else "all"
        table.add_row(u.name, u.role, channels, f"{u.created_at:%Y-%m-%d %H:%M}")
    console.print(table)
