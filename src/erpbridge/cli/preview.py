"""``erpbridge sync --dry-run``'s diff: each record that would change, field by field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from erpbridge.cli.common import console

if TYPE_CHECKING:
    from erpbridge.engine.runner import RunResult

__all__ = ["print_preview"]

#: Records printed per flow; the API answers up to the preview's own limit.
SHOWN = 20


def _value(value: Any) -> str:
    import orjson

    return "" if value is None else orjson.dumps(value, default=str).decode()


def print_preview(result: RunResult) -> None:
    """The records ``result`` (a dry run) would create or update, and how."""
    from rich.table import Table

    preview = result.preview
    if preview is None:
        return
    if not preview.changes:
        console.print(f"dry run of {result.flow}: no record would change", highlight=False)
        return
    console.print(
        f"dry run of {result.flow}: what would change (nothing was written)", highlight=False
    )
    table = Table()
    for column in ("record", "field", "hub", "incoming"):
        table.add_column(column, overflow="fold")
    for change in preview.changes[:SHOWN]:
        label = change.key if change.action == "create" else f"{change.key} (v{change.version})"
        label = f"{change.action} {label}"
        for i, diff in enumerate(change.fields):
            hub = "(none)" if diff.kind == "added" else _value(diff.hub)
            incoming = "(removed)" if diff.kind == "removed" else _value(diff.incoming)
            table.add_row(label if i == 0 else "", diff.path, hub, incoming)
    console.print(table)
    more = len(preview.changes) - SHOWN
    if more > 0 or preview.truncated:
        console.print(
            f"… and {'more' if preview.truncated else more} record(s) not shown; the counts above "
            "cover them all",
            highlight=False,
        )
