"""Run leases and the run lock per IN flow: who runs what, and whether that process still lives.

A run records its process (host, pid and ``node``, which names the machine and PID namespace)
and a lease, ``lease_until``, that its heartbeat keeps moving. A ``running`` run past its lease,
or whose process is gone on this very node, has lost its process: it is shown ``interrupted``
and settled so (:func:`settle_interrupted`) by the next run or worker that starts.

The run lock of a flow is a row of ``flow_locks``: inserting it takes the lock (one process wins
the primary key, on SQLite and PostgreSQL alike), the heartbeat extends ``expires_at``, every
batch checks it still holds the row before committing (:func:`fence`), and closing the run
deletes it. A lock whose holder was killed frees itself when it expires, or at once when the
holder is known dead on this node.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select, update

from erpbridge.errors import FlowBusy, LockLost
from erpbridge.store.tables import flow_locks, runs

__all__ = [
    "ProcessIdentity",
    "aware",
    "busy",
    "fence",
    "renew_leases",
    "settle_interrupted",
    "shown_status",
    "take_flow",
    "this_process",
]


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as runs and locks record it."""

    host: str
    pid: int
    #: Host name, boot id and PID namespace: two processes with the same ``node`` see the same
    #: process ids, so one can tell whether the other is still alive.
    node: str


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return ""


@cache
def _node() -> str:
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return "|".join((socket.gethostname(), boot, namespace))[:255]


def this_process() -> ProcessIdentity:
    """The identity of the calling process."""
    return ProcessIdentity(socket.gethostname()[:255], os.getpid(), _node())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child its parent has not reaped yet still answers: a zombie runs nothing.
    stat = _read(f"/proc/{pid}/stat")
    return not stat or stat.rpartition(")")[2].split()[:1] != ["Z"]


def _gone(node: str | None, pid: int | None, me: ProcessIdentity) -> bool:
    """Known dead: recorded on this node, and no such process any more."""
    return node == me.node and pid is not None and pid != me.pid and not _pid_alive(pid)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive timestamps (stored as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def shown_status(row: Any, at: datetime, me: ProcessIdentity | None = None) -> str:
    """A run's status as users see it: ``running`` past its lease (or of a dead process on this
    node) is ``interrupted``. Runs started before leases existed have none: interrupted too."""
    if row.status != "running":
        return str(row.status)
    if row.lease_until is None or aware(row.lease_until) < at:
        return "interrupted"
    return "interrupted" if _gone(row.node, row.pid, me or this_process()) else "running"


def _interrupted_error(row: Any) -> str:
    who = f"pid {row.pid} on host {row.host}" if row.pid is not None else "an older erpbridge"
    last = f"{aware(row.lease_until):%Y-%m-%d %H:%M:%S} UTC" if row.lease_until else "unknown"
    return (
        f"interrupted: its process ({who}) stopped without closing the run (lease until {last}); "
        "the next run resumes at the last committed batch"
    )


def settle_interrupted(conn: Connection, at: datetime, flow: str | None = None) -> list[int]:
    """Mark ``running`` runs whose process is gone as ``interrupted`` and free their locks;
    return their ids."""
    me = this_process()
    query = select(runs.c.id, runs.c.pid, runs.c.host, runs.c.node, runs.c.lease_until).where(
        runs.c.status == "running"
    )
    if flow is not None:
        query = query.where(runs.c.flow == flow)
    stale = [r for r in conn.execute(query) if shown_status(_Running(r), at, me) != "running"]
    for row in stale:
        conn.execute(
            update(runs)
            .where(runs.c.id == row.id, runs.c.status == "running")
            .values(status="interrupted", finished_at=at, error=_interrupted_error(row))
        )
    if stale:
        conn.execute(delete(flow_locks).where(flow_locks.c.run_id.in_([r.id for r in stale])))
    return [r.id for r in stale]


class _Running:
    """A row of the settle query seen as a run still marked ``running``."""

    status = "running"

    def __init__(self, row: Any) -> None:
        self.lease_until, self.node, self.pid = row.lease_until, row.node, row.pid


def busy(conn: Connection, flow: str, at: datetime) -> FlowBusy | None:
    """The live holder of ``flow``'s run lock as the error a second run gets, or ``None``."""
    row = conn.execute(select(flow_locks).where(flow_locks.c.flow == flow)).first()
    if row is None or aware(row.expires_at) < at or _gone(row.node, row.pid, this_process()):
        return None
    since = f"{aware(row.acquired_at):%Y-%m-%d %H:%M:%S} UTC"
    return FlowBusy(flow, row.run_id, row.pid, row.host, since)


def take_flow(conn: Connection, flow: str, run_id: int, at: datetime, lease: timedelta) -> None:
    """Take ``flow``'s run lock for ``run_id`` in the caller's transaction.

    A lock past its lease, or held by a process known dead, is freed first (its run settled as
    interrupted). Raises :class:`FlowBusy` when a live run holds it; the caller's transaction
    must then be rolled back. Two processes racing for a free lock both insert: the primary key
    lets one commit (on PostgreSQL the other waits for it, then fails with IntegrityError, which
    the caller turns into :class:`FlowBusy` with :func:`busy`).
    """
    row = conn.execute(select(flow_locks).where(flow_locks.c.flow == flow)).first()
    if row is not None:
        holder = busy(conn, flow, at)
        if holder is not None:
            raise holder
        settle_interrupted(conn, at, flow)
        conn.execute(
            delete(flow_locks).where(flow_locks.c.flow == flow, flow_locks.c.run_id == row.run_id)
        )
    me = this_process()
    conn.execute(
        flow_locks.insert().values(
            flow=flow,
            run_id=run_id,
            host=me.host,
            pid=me.pid,
            node=me.node,
            acquired_at=at,
            expires_at=at + lease,
        )
    )


def fence(conn: Connection, flow: str, run_id: int, at: datetime, lease: timedelta) -> None:
    """Check, in a batch's transaction, that ``run_id`` still holds ``flow``'s lock (and extend
    it); raise :class:`LockLost` if not, so that nothing of the batch is committed."""
    held = conn.execute(
        update(flow_locks)
        .where(flow_locks.c.flow == flow, flow_locks.c.run_id == run_id)
        .values(expires_at=at + lease)
    )
    if held.rowcount == 0:
        raise LockLost(
            f"run {run_id} lost the run lock of flow {flow!r} (its lease ran out and another "
            "run may hold the flow now): this batch was not stored"
        )


def renew_leases(conn: Connection, run_ids: list[int], at: datetime, lease: timedelta) -> None:
    """The heartbeat: extend the leases of ``run_ids`` (still running) and of their locks."""
    if not run_ids:
        return
    until = at + lease
    # Locks before runs, the order a batch's transaction takes them in (fence, then its
    # counters): the other order deadlocks against a batch on PostgreSQL.
    conn.execute(
        update(flow_locks)
        # never revive a lock that expired: another run may be taking it over right now
        .where(flow_locks.c.run_id.in_(run_ids), flow_locks.c.expires_at >= at)
        .values(expires_at=until)
    )
    conn.execute(
        update(runs)
        .where(runs.c.id.in_(run_ids), runs.c.status == "running")
        .values(lease_until=until)
    )
