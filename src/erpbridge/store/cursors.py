"""A flow's cursor as an operator sees and resets it (``erpbridge cursor``, the API).

The cursor is what the flow's transport stored after its last committed batch (a timestamp,
``{"value", "type", "key", "column"}`` for SQL, a page token…), kept as JSON. Resetting it to
nothing makes the next run read everything (and a flow with ``trigger: initial`` run its full
pass again); ``to`` sets a value in the same form ``show`` prints. A flow a live run holds is
refused: its batches would write their own cursor over the reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from erpbridge.store.runlease import aware, busy
from erpbridge.store.runs import now
from erpbridge.store.tables import cursors

__all__ = ["CursorView", "cursor_views", "reset_cursor"]


@dataclass(frozen=True, slots=True)
class CursorView:
    """A flow's stored cursor: its value, an unfinished full pass, the run that wrote it."""

    flow: str
    #: ``None``: no cursor (never run, or reset): the next run reads everything.
    value: Any
    #: Where an unfinished full pass stands (it resumes there), else ``None``.
    full_pass: Any
    run_id: int | None
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The view as JSON-ready data (the API's and the audit's form)."""
        return {
            "flow": self.flow,
            "value": self.value,
            "full_pass": self.full_pass,
            "run_id": self.run_id,
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
        }


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def cursor_views(conn: Connection, flows: list[str]) -> list[CursorView]:
    """The cursors of ``flows``, in that order; a flow without one has ``value=None``."""
    rows = {r.flow: r for r in conn.execute(select(cursors).where(cursors.c.flow.in_(flows)))}
    views = []
    for flow in flows:
        row = rows.get(flow)
        if row is None:
            views.append(CursorView(flow, None, None, None, None))
        else:
            at = aware(row.updated_at)
            views.append(CursorView(flow, _loads(row.value), _loads(row.full_pass), row.run_id, at))
    return views


def reset_cursor(conn: Connection, flow: str, to: Any = None) -> tuple[CursorView, CursorView]:
    """Reset ``flow``'s cursor to nothing (``to`` ``None``) or to ``to``, in the caller's
    transaction; return (before, after). Raises :class:`~erpbridge.errors.FlowBusy` while a
    live run holds the flow."""
    holder = busy(conn, flow, now())
    if holder is not None:
        raise holder
    (before,) = cursor_views(conn, [flow])
    conn.execute(delete(cursors).where(cursors.c.flow == flow))
    if to is not None:  # no run wrote it: run_id stays empty
        value = orjson.dumps(to).decode()
        conn.execute(cursors.insert().values(flow=flow, value=value, updated_at=now()))
    (after,) = cursor_views(conn, [flow])
    return before, after
