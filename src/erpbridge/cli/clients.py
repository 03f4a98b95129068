"""``erpbridge clients``: API clients and their credentials; ``erpbridge secrets rotate``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, actor, console, fail, load, store
from erpbridge.store.scopes import SCOPES

__all__ = ["clients_app", "secrets_app"]

clients_app = typer.Typer(help="API clients: add, list, revoke.", no_args_is_help=True)
secrets_app = typer.Typer(help="Secrets at rest.", no_args_is_help=True)

#: Longest lifetime ``--expires-in-days`` takes (100 years).
_MAX_DAYS = 36500


@clients_app.command(name="add")
def add_client(
    name: Annotated[str, typer.Argument(help="The client's name (its OAuth client_id).")],
    scope: Annotated[
        list[str], typer.Option("--scope", "-s", help=f"Repeat: {', '.join(sorted(SCOPES))}.")
    ],
    channel: Annotated[
        list[str] | None, typer.Option(help="Repeat: only these channels (default: all).")
    ] = None,
    allow_ip: Annotated[
        list[str] | None, typer.Option(help="Repeat: CIDR ranges it may call from.")
    ] = None,
    expires_in_days: Annotated[
        float | None,
        typer.Option(
            help=f"The client expires after this many days (more than 0, at most "
            f"{_MAX_DAYS}); leave it out for a client that never expires."
        ),
    ] = None,
    rate_limit: Annotated[
        str | None, typer.Option(help="Its own limit, e.g. '10/second; 5000/day'.")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Register a client and print its credential, once: it is stored only as a hash."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.apiclients import create_client
    from erpbridge.store.runs import now

    loaded = load(config)
    unknown = sorted(set(channel or []) - set(loaded.model.channels))
    if unknown:
        raise fail(f"no channel named {', '.join(unknown)}", 2)
    if rate_limit:
        from limits import parse_many

        try:
            parse_many(rate_limit)
        except ValueError as exc:
            raise fail(f"--rate-limit {rate_limit!r}: {exc}", 2) from None
    expires = None
    if expires_in_days is not None:
        # 0 (or less) used to mean "never": refused, so a typo never makes an eternal client.
        if not 0 < expires_in_days <= _MAX_DAYS:
            raise fail(
                f"--expires-in-days {expires_in_days:g}: give a number of days above 0 and at "
                f"most {_MAX_DAYS}; leave the option out for a client that never expires",
                2,
            )
        expires = now() + timedelta(days=expires_in_days)
    client_engine = store(loaded)
    try:
        client, key = create_client(
            client_engine,
            name,
            set(scope),
            channels=set(channel) if channel else None,
            allowed_ips=allow_ip,
            expires_at=expires,
            rate_limit=rate_limit,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    record_action(
        client_engine,
        actor(),
        None,
        "client.add",
        client.name,
        detail={"scopes": sorted(client.scopes), "channels": sorted(client.channels or [])},
    )
    console.print(f"client [bold]{client.name}[/] scopes {', '.join(sorted(client.scopes))}")
    console.print("its credential (shown once; use it as X-API-Key or as the OAuth client secret):")
    print(key)


@clients_app.command(name="list")
def show_clients(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Every client: scopes, channels, networks, identity-provider identities mapped to it
    (hub.api.identity_providers[].identities), expiry, state, last use (never a credential)."""
    from erpbridge.store.apiclients import list_clients
    from erpbridge.store.runs import now

    loaded = load(config)
    identities: dict[str, list[str]] = {}
    for provider in loaded.model.hub.api.identity_providers:
        for subject, name in provider.identities.items():
            identities.setdefault(name, []).append(f"{subject} @ {provider.issuer}")
    table = Table(
        "name", "scopes", "channels", "networks", "identities", "expires", "state", "last used"
    )
    at = now()
    for c in list_clients(store(loaded)):
        state = (
            "revoked"
            if c.revoked_at
            else "expired"
            if c.expires_at and c.expires_at <= at
            else "active"
        )
        table.add_row(
            c.name,
            ", ".join(sorted(c.scopes)),
            ", ".join(sorted(c.channels)) if c.channels is not None else "all",
            ", ".join(map(str, c.allowed_ips)) if c.allowed_ips is not None else "any",
            ", ".join(identities.get(c.name, [])) or "-",
            f"{c.expires_at:%Y-%m-%d %H:%M}" if c.expires_at else "never",
            state,
            f"{c.last_used_at:%Y-%m-%d %H:%M}" if c.last_used_at else "-",
        )
    console.print(table)


@clients_app.command(name="revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The client to revoke.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Revoke a client for good: its key, its tokens, its certificate and the identities mapped
    to it stop working at once."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.apiclients import revoke_client

    engine = store(load(config))
    if not revoke_client(engine, name):
        raise fail(f"no active client named {name!r}")
    record_action(engine, actor(), None, "client.revoke", name)
    console.print(f"client {name} revoked")


@secrets_app.command(name="rotate")
def rotate_secrets(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Re-encrypt every stored secret with the first key of ERPBRIDGE_SECRET_KEY."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.secretbox import SecretBox, SecretKeyError, rotate

    loaded = load(config)
    engine = store(loaded)
    try:
        box = SecretBox.from_environment(loaded.base_dir)
        with engine.begin() as conn:
            count = rotate(conn, box)
    except SecretKeyError as exc:
        raise fail(str(exc)) from None
    record_action(engine, actor(), None, "secrets.rotate", None, detail={"count": count})
    console.print(f"{count} secret(s) re-encrypted with the current key")
