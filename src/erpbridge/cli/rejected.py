"""``erpbridge rejected``'s parts: the list with every failing field, one rejection with its
payload, and dismissing with a reason (audited as ``cli:<user>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from erpbridge.cli.common import actor, console, fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from erpbridge.store.states import RejectionStatus

__all__ = ["dismiss_rejected", "print_rejections", "show_payloads"]


def print_rejections(engine: Engine, flow: str | None, status: RejectionStatus, limit: int) -> None:
    """The rejections of ``status``, oldest first: one line per failing field."""
    from rich.table import Table

    from erpbridge.store.read import EVERYTHING, rejected_page
    from erpbridge.store.runs import problems_of

    table = Table(title=f"{status} rejections")
    for column in ("id", "flow", "run", "position", "field", "reason"):
        table.add_column(column)
    with engine.connect() as conn:
        rows = rejected_page(
            conn, EVERYTHING, flow=flow, status=status, limit=limit, order="oldest"
        )
    for r in rows:
        problems = problems_of(r)
        table.add_row(
            str(r.id),
            r.flow,
            str(r.run_id),
            r.position,
            "\n".join(p["path"] or "(record)" for p in problems),
            "\n".join(p["reason"] for p in problems),
        )
    console.print(table)


def show_payloads(engine: Engine, ids: list[int]) -> None:
    """Each rejection with its failing fields, what became of it and its payload (JSON)."""
    import orjson

    from erpbridge.store.read import EVERYTHING, rejected_by_id
    from erpbridge.store.runs import problems_of

    with engine.connect() as conn:
        rows = [(i, rejected_by_id(conn, EVERYTHING, i)) for i in ids]
    missing = [str(i) for i, row in rows if row is None]
    if missing:
        raise fail(f"no rejection {', '.join(missing)}", 2)
    for _, r in rows:
        assert r is not None
        console.print(
            f"rejection {r.id}: flow {r.flow}, run {r.run_id}, {r.position}, {r.status}",
            highlight=False,
            markup=False,
        )
        if r.status == "dismissed":
            console.print(
                f"  dismissed by {r.resolved_by}: {r.note}", highlight=False, markup=False
            )
        for p in problems_of(r):
            console.print(
                f"  {p['path'] or '(record)'}: {p['reason']}", highlight=False, markup=False
            )
        payload = "(none: a whole file; drop the fixed file again)"
        if r.payload is not None:
            payload = orjson.dumps(orjson.loads(r.payload), option=orjson.OPT_INDENT_2).decode()
        console.print(payload, highlight=False, markup=False)


def dismiss_rejected(engine: Engine, flow: str | None, ids: list[int] | None, reason: str) -> None:
    """Dismiss the open rejections ``ids`` (or every open one of ``flow``) with ``reason``."""
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.read import EVERYTHING, rejected_page
    from erpbridge.store.rejections import dismiss_rejections

    reason = reason.strip()
    if not reason:
        raise fail("--dismiss needs a reason: say why these need no replay", 2)
    if not ids:
        if flow is None:
            raise fail("--dismiss needs --id ID… or --flow FLOW", 2)
        with engine.connect() as conn:
            ids = [r.id for r in rejected_page(conn, EVERYTHING, flow=flow, limit=None)]
    who = actor()
    with engine.begin() as conn:
        done = dismiss_rejections(conn, ids, who, reason)
    target = ",".join(str(i) for i in done)[:255] or None
    record_action(
        engine, who, None, "rejected.dismiss", target, detail={"ids": done, "reason": reason}
    )
    skipped = sorted(set(ids) - set(done))
    console.print(f"dismissed {len(done)} rejection(s)", highlight=False, markup=False)
    if skipped:
        console.print(
            f"not open (left as they are): {', '.join(map(str, skipped))}",
            highlight=False,
            markup=False,
        )
