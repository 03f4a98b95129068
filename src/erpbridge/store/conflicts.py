"""Two-way flows without flip-flops: detect and settle conflicts at the moment they appear.

A conflict is a record that changes IN from channel X while a delivery of the hub's own newer
state to X is still open: both sides changed since they last agreed. The IN flow's ``conflict``
policy decides, per record, in the batch's transaction:

- ``source_wins``: X's change is applied; the open deliveries to X are cancelled.
- ``target_wins``: the hub keeps its version; X's change is not applied and the open delivery
  will overwrite it in X.
- ``newest_wins``: the side whose ``updated_at`` is later wins (X's change wins when either
  side has none).
- ``manual``: nothing is applied; the deliveries to X are held and the conflict waits, with
  both versions, for ``erpbridge conflicts resolve ID --take source|hub``.

Every conflict is stored, settled or open, so the decision is visible afterwards.

The same policies settle a change to a field another channel owns (the entity's ``owners:``,
``store.merge``): without a policy the owner's value simply stays; with one, the change is a
conflict settled as above (``manual`` leaves it open: ``--take source`` applies the change).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from erpbridge.store.states import OPEN_DELIVERY_STATES
from erpbridge.store.tables import conflicts, deliveries

__all__ = ["POLICIES", "settle", "settle_owned", "take_hub", "take_source_payload"]

POLICIES = ("source_wins", "target_wins", "newest_wins", "manual")


def _open_deliveries(conn: Connection, channel: str, record_ids: list[int]) -> dict[int, list[int]]:
    query = select(deliveries.c.id, deliveries.c.record_id).where(
        deliveries.c.channel == channel,
        deliveries.c.record_id.in_(record_ids),
        deliveries.c.state.in_(OPEN_DELIVERY_STATES),
    )
    found: dict[int, list[int]] = {}
    for row in conn.execute(query):
        found.setdefault(row.record_id, []).append(row.id)
    return found


def _source_wins(policy: str, incoming: dict[str, Any], hub: dict[str, Any]) -> bool | None:
    """True: apply X's change; False: keep the hub's; None: leave it to a person."""
    if policy == "source_wins":
        return True
    if policy == "target_wins":
        return False
    if policy == "newest_wins":
        theirs, ours = incoming.get("updated_at"), hub.get("updated_at")
        return theirs is None or ours is None or str(theirs) >= str(ours)
    return None


def _row(
    flow: str,
    channel: str,
    entity: str,
    policy: str,
    run_id: int | None,
    at: datetime,
    item: Any,
    row: Any,
    wins: bool | None,
) -> dict[str, Any]:
    """A ``conflicts`` row: open when nobody won yet (``wins`` None)."""
    return {
        "flow": flow, "channel": channel, "entity": entity, "record_id": row.id,
        "key": item.key, "hub_version": row.version, "incoming_payload": item.blob.decode(),
        "external_id": item.external_id, "policy": policy,
        "status": "open" if wins is None else "resolved",
        "winner": None if wins is None else ("source" if wins else "hub"),
        "run_id": run_id, "created_at": at, "resolved_at": None if wins is None else at,
    }  # fmt: skip


def settle(
    conn: Connection,
    *,
    policy: str,
    flow: str,
    channel: str,
    entity: str,
    run_id: int | None,
    at: datetime,
    changed: Sequence[tuple[Any, Any]],
) -> tuple[list[tuple[Any, Any]], int]:
    """Settle the conflicts among ``changed`` (incoming item, hub row); return the pairs to
    apply (those without a conflict and those the policy lets through) and the conflict count."""
    if not changed:
        return [], 0
    pending = _open_deliveries(conn, channel, [row.id for _, row in changed])
    apply: list[tuple[Any, Any]] = []
    found: list[dict[str, Any]] = []
    cancel_ids: list[int] = []
    hold_ids: list[int] = []
    for item, row in changed:
        waiting = pending.get(row.id)
        if not waiting:
            apply.append((item, row))
            continue
        wins = _source_wins(policy, item.payload, orjson.loads(row.payload))
        if wins:
            apply.append((item, row))
            cancel_ids.extend(waiting)
        elif wins is None:
            hold_ids.extend(waiting)
        found.append(_row(flow, channel, entity, policy, run_id, at, item, row, wins))
    if found:
        conn.execute(insert(conflicts), found)
    if cancel_ids:
        conn.execute(
            update(deliveries).where(deliveries.c.id.in_(cancel_ids))
            .values(state="cancelled", updated_at=at,
                    last_error=f"superseded by a newer change from {channel} ({policy})")
        )  # fmt: skip
    if hold_ids:
        conn.execute(
            update(deliveries).where(deliveries.c.id.in_(hold_ids))
            .values(state="held", updated_at=at,
                    last_error="held: conflicting change from the target, see erpbridge conflicts")
        )  # fmt: skip
    return apply, len(found)


def settle_owned(
    conn: Connection,
    *,
    policy: str,
    flow: str,
    channel: str,
    entity: str,
    run_id: int | None,
    at: datetime,
    trespasses: Sequence[tuple[Any, Any, dict[str, Any]]],
) -> list[bool]:
    """Settle changes of fields another channel owns: (incoming item holding the change, hub
    row, stored payload) each. Return per change whether it is applied; each is stored as a
    conflict (an open one only once while the same change waits)."""
    decisions: list[bool] = []
    found: list[dict[str, Any]] = []
    waiting: set[tuple[int, str]] = set()
    if policy == "manual":
        query = select(conflicts.c.record_id, conflicts.c.incoming_payload).where(
            conflicts.c.flow == flow,
            conflicts.c.status == "open",
            conflicts.c.record_id.in_([row.id for _, row, _ in trespasses]),
        )
        waiting = {(r.record_id, r.incoming_payload) for r in conn.execute(query)}
    for item, row, stored in trespasses:
        wins = _source_wins(policy, item.payload, stored)
        decisions.append(bool(wins))
        if wins is None and (row.id, item.blob.decode()) in waiting:
            continue  # the same change already waits for a person
        found.append(_row(flow, channel, entity, policy, run_id, at, item, row, wins))
    if found:
        conn.execute(insert(conflicts), found)
    return decisions


def _close(conn: Connection, conflict_id: int, winner: str, at: datetime) -> Any:
    row = conn.execute(
        select(conflicts).where(conflicts.c.id == conflict_id, conflicts.c.status == "open")
    ).first()
    if row is None:
        raise LookupError(f"no open conflict {conflict_id}")
    conn.execute(
        update(conflicts).where(conflicts.c.id == conflict_id)
        .values(status="resolved", winner=winner, resolved_at=at)
    )  # fmt: skip
    return row


def take_hub(conn: Connection, conflict_id: int, at: datetime) -> None:
    """Settle an open conflict for the hub: its held deliveries to the channel go out."""
    row = _close(conn, conflict_id, "hub", at)
    conn.execute(
        update(deliveries)
        .where(deliveries.c.record_id == row.record_id, deliveries.c.channel == row.channel,
               deliveries.c.state == "held")
        .values(state="pending", next_attempt_at=at, updated_at=at, last_error=None)
    )  # fmt: skip


def take_source_payload(conn: Connection, conflict_id: int, at: datetime) -> Any:
    """Settle an open conflict for the channel: cancel the held deliveries and return the row,
    whose ``incoming_payload`` the caller applies as a new version from that channel."""
    row = _close(conn, conflict_id, "source", at)
    conn.execute(
        update(deliveries)
        .where(deliveries.c.record_id == row.record_id, deliveries.c.channel == row.channel,
               deliveries.c.state == "held")
        .values(state="cancelled", updated_at=at,
                last_error=f"conflict {conflict_id} settled for {row.channel}")
    )  # fmt: skip
    return row
