"""``erpbridge prune``: apply ``hub.retention`` now (the scheduler of ``erpbridge run`` does it
every ``hub.retention.every``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, actor, console, load, store

__all__ = ["prune"]


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Delete history older than hub.retention allows, in short batches (safe while it runs)."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.retention import prune as apply

    loaded = load(config)
    policy = loaded.model.hub.retention
    engine = store(loaded)
    try:
        report = apply(engine, policy.ages(), batch_size=policy.batch_size, dry_run=dry_run)
        if not dry_run:
            deleted = {item.rule: item.rows for item in report if item.rows}
            record_action(engine, actor(), None, "retention.prune", None, detail=deleted)
    finally:
        engine.dispose()
    table = Table("rule", "older than", "would delete" if dry_run else "deleted")
    for item in report:
        cutoff = "off" if item.cutoff is None else f"{item.cutoff:%Y-%m-%d %H:%M:%S} UTC"
        if item.rule == "expired":
            cutoff = "their expiry"
        table.add_row(item.rule, cutoff, str(item.rows))
    console.print(table)
