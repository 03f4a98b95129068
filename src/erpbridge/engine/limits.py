"""A channel's outbound ``limits``, held by every worker that shares the hub store.

The request rate is a token bucket in ``channel_tokens`` (one row per channel), changed in short
transactions; a worker that must wait sleeps outside them. The in-flight cap is counted in the
delivery ledger itself, inside the claimer's transaction.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import Connection, DateTime, Engine, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from erpbridge.config.models import ChannelLimits
from erpbridge.errors import RetriableError
from erpbridge.store.runs import now
from erpbridge.store.tables import channel_tokens, deliveries

__all__ = ["ChannelLimiter"]

# First key of pg_advisory_xact_lock(key, hashtext(channel)): the two-key space never meets the
# one-key locks taken elsewhere (procrastinate's schema install in engine.dispatch).
_IN_FLIGHT_LOCK = 0x65726C66  # "erlf"


class ChannelLimiter:
    """Holds channels to their ``limits`` across all processes on the same hub store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire_requests(
        self, channel: str, limits: ChannelLimits | None, n: int = 1, timeout: float = 10.0
    ) -> None:
        """Take ``n`` request tokens of ``channel``, waiting at most ``timeout`` seconds.

        Raises :class:`RetriableError` (with ``retry_after``) when they cannot be had in time.
        """
        if limits is None or limits.requests_per_second is None or n < 1:
            return
        rate = limits.requests_per_second
        deadline = time.monotonic() + timeout
        while (wait := self._take(channel, rate, limits.burst, n)) > 0:
            if wait > deadline - time.monotonic():
                raise RetriableError(
                    f"channel {channel}: {n} request(s) not allowed within {timeout:g} s "
                    f"at {rate:g} requests/s",
                    retry_after=wait,
                )
            time.sleep(wait)  # outside the transaction: the others keep drawing meanwhile

    def in_flight_allowance(
        self, conn: Connection, channel: str, limits: ChannelLimits | None, wanted: int
    ) -> int:
        """How many of ``wanted`` more deliveries of ``channel`` may be claimed now.

        Call it in the claim's transaction: on PostgreSQL it holds a lock on the channel until
        commit, so two claimers cannot both see room for the last slot (SQLite's hub
        transactions are serial already).
        """
        if limits is None or limits.max_in_flight is None:
            return wanted
        if conn.dialect.name == "postgresql":
            lock = func.pg_advisory_xact_lock(_IN_FLIGHT_LOCK, func.hashtext(channel))
            conn.execute(select(lock))
        # An expired lease no longer counts: claim() hands that delivery out again.
        busy = conn.execute(
            select(func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.channel == channel,
                deliveries.c.state == "in_flight",
                deliveries.c.lease_expires_at >= now(),
            )
        ).scalar_one()
        return max(0, min(wanted, limits.max_in_flight - busy))

    def _take(self, channel: str, rate: float, burst: int, n: int) -> float:
        """Take ``n`` tokens and return 0, or take none and return the seconds to wait."""
        with self.engine.begin() as conn:
            tokens, refilled_at = _bucket(conn, channel, burst)
            at = _clock(conn)
            # A clock stepped back (NTP) refills nothing, and refilled_at never goes back.
            tokens = min(float(burst), tokens + rate * max(0.0, (at - refilled_at).total_seconds()))
            # More than a bucket's worth goes once the bucket is full and leaves a debt that the
            # next requests wait off: the average rate holds and a big batch is never stuck.
            need = min(float(n), float(burst))
            if tokens < need:
                return (need - tokens) / rate
            conn.execute(
                update(channel_tokens)
                .where(channel_tokens.c.channel == channel)
                .values(tokens=tokens - n, refilled_at=max(at, refilled_at))
            )
            return 0.0


def _bucket(conn: Connection, channel: str, burst: int) -> tuple[float, datetime]:
    """The channel's bucket row, locked until commit; created full on first use."""
    query = select(channel_tokens.c.tokens, channel_tokens.c.refilled_at).where(
        channel_tokens.c.channel == channel
    )
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        insert = pg_insert if postgres else sqlite_insert
        conn.execute(
            insert(channel_tokens)
            .values(channel=channel, tokens=float(burst), refilled_at=_clock(conn))
            # Another worker may create it at the same moment; then theirs stands.
            .on_conflict_do_nothing(index_elements=["channel"])
        )
        row = conn.execute(query).one()
    refilled_at: datetime = row.refilled_at
    if refilled_at.tzinfo is None:  # SQLite keeps no zone; the store writes UTC
        refilled_at = refilled_at.replace(tzinfo=UTC)
    return float(row.tokens), refilled_at


def _clock(conn: Connection) -> datetime:
    """Now, for the bucket: the database's clock where workers on several machines share it."""
    if conn.dialect.name == "postgresql":
        # clock_timestamp(), not now(): the time after the row lock was granted, not the
        # transaction's start.
        stamp: datetime = conn.execute(
            select(func.clock_timestamp(type_=DateTime(timezone=True)))
        ).scalar_one()
        return stamp
    return now()  # a SQLite store is a file on one machine: its clock is the clock
