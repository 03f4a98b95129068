"""``erpbridge reload`` and ``erpbridge config``: reload the serving processes' configuration
without a restart, list the versions kept in the hub, diff them, roll back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, actor, console, fail, load, store

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Engine

    from erpbridge.store.configversions import ProcessVersion

__all__ = ["config_app", "reload"]

config_app = typer.Typer(
    help="Configuration versions kept in the hub: list, diff, roll back; processes.",
    no_args_is_help=True,
)

#: A process not heard of for this long is shown as gone (it polls every 2 s).
GONE_S = 30.0


def _wait_for(engine: Engine, version_id: int, wait: float) -> None:
    """Wait until every live process runs ``version_id`` (or ``wait`` passes); show them."""
    from erpbridge.store.configversions import list_processes
    from erpbridge.store.runs import now

    deadline = time.monotonic() + wait
    while True:
        with engine.connect() as conn:
            processes = list_processes(conn)
        live = [p for p in processes if (now() - p.seen_at).total_seconds() < GONE_S]
        if all(p.version_id >= version_id for p in live) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    _print_processes(processes, version_id)


def _print_processes(processes: Sequence[ProcessVersion], version_id: int | None = None) -> None:
    from erpbridge.store.runs import now

    table = Table("process", "role", "version", "loaded", "last seen")
    for p in processes:
        age = (now() - p.seen_at).total_seconds()
        seen = f"{age:.0f} s ago" + (" (gone?)" if age >= GONE_S else "")
        lagging = version_id is not None and p.version_id < version_id and age < GONE_S
        version = f"{p.version_id}" + (" (not yet: see its log)" if lagging else "")
        table.add_row(
            f"{p.host}:{p.pid}", p.role, version, f"{p.loaded_at:%Y-%m-%d %H:%M:%S}", seen
        )
    console.print(table)


def reload(
    config_path: ConfigOption = DEFAULT_CONFIG,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the running processes to follow.")
    ] = 10.0,
) -> None:
    """Check the configuration file and make the running `erpbridge run`/`api` processes load
    it, without a restart (they poll the hub; SIGHUP does the same for one process). A file
    with problems is refused (exit 2) and the running configuration stays."""
    from erpbridge.engine.reloader import ConfigRefused, check_text
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.configversions import record_version

    try:
        text = config_path.read_text(encoding="utf-8")
        check_text(text, config_path)
    except OSError as exc:
        raise fail(f"cannot read {config_path}: {exc.strerror or exc}", 2) from None
    except ConfigRefused as exc:
        for problem in exc.problems:
            console.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise fail(
            f"{len(exc.problems)} problem(s) in {config_path}: refused, the running "
            "configuration stays",
            2,
        ) from None
    engine = store(load(config_path))
    who = actor()
    with engine.begin() as conn:
        version_id, new = record_version(conn, text, who, "reload")
    record_action(engine, who, None, "config.reload", str(config_path.resolve()),
                  detail={"version": version_id, "changed": new})  # fmt: skip
    state = "new version" if new else "unchanged, version"
    console.print(f"configuration {config_path}: {state} {version_id}", highlight=False)
    _wait_for(engine, version_id, wait)


@config_app.command(name="versions")
def versions(
    config_path: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="How many to list.")] = 20,
) -> None:
    """The configuration versions kept in the hub, newest first: who, how, when."""
    from erpbridge.store.configversions import list_versions

    engine = store(load(config_path))
    with engine.connect() as conn:
        rows = list_versions(conn, limit)
    table = Table("version", "when", "by", "how", "sha256")
    for v in rows:
        table.add_row(
            str(v.id), f"{v.created_at:%Y-%m-%d %H:%M:%S}", v.actor, v.action, v.sha256[:12]
        )
    console.print(table)


@config_app.command(name="diff")
def diff(
    old: Annotated[int, typer.Argument(help="The older version.")],
    new: Annotated[int | None, typer.Argument(help="The newer one (default: the newest).")] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """A unified diff of two versions' YAML texts."""
    from erpbridge.store.configversions import get_version, newest_version, unified

    engine = store(load(config_path))
    with engine.connect() as conn:
        a = get_version(conn, old)
        b = newest_version(conn) if new is None else get_version(conn, new)
    if a is None or b is None:
        raise fail(f"no configuration version {old if a is None else new}", 2)
    console.print(unified(a, b) or "(the same text)", highlight=False, markup=False)


@config_app.command(name="rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="The version to go back to.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the processes.")] = 10.0,
) -> None:
    """Write a kept version back to the configuration file (its comments included) and have the
    running processes load it; refused (exit 2) if that version no longer passes the check."""
    from erpbridge.engine.reloader import ConfigRefused, check_text, write_atomically
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.configversions import get_version, record_version

    engine = store(load(config_path))
    with engine.connect() as conn:
        kept = get_version(conn, version)
    if kept is None:
        raise fail(f"no configuration version {version}", 2)
    try:
        check_text(kept.text, config_path)
    except ConfigRefused as exc:
        for problem in exc.problems:
            console.print(problem, highlight=False, markup=False, soft_wrap=True)
        raise fail(f"version {version} no longer passes the check; the file stays", 2) from None
    write_atomically(config_path, kept.text)
    who = actor()
    with engine.begin() as conn:
        version_id, _ = record_version(
            conn, kept.text, f"{who} (rollback to version {version})", "rollback"
        )
    record_action(
        engine, who, None, "config.rollback", str(version), detail={"version": version_id}
    )
    console.print(f"configuration {config_path}: version {version} is back as version {version_id}")
    _wait_for(engine, version_id, wait)


@config_app.command(name="processes")
def processes(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """The serving processes and the configuration version each runs."""
    from erpbridge.store.configversions import list_processes

    engine = store(load(config_path))
    with engine.connect() as conn:
        found = list_processes(conn)
    _print_processes(found)
