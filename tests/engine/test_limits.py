"""A channel's limits hold across processes sharing the hub store, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from erpbridge.config.models import ChannelLimits
from erpbridge.engine.limits import ChannelLimiter
from erpbridge.errors import RetriableError
from erpbridge.store import open_store
from erpbridge.store.deliveries import claim
from erpbridge.store.runs import now
from erpbridge.store.tables import channel_tokens, deliveries, records

# Draws request tokens in a process of its own once the test says go; logs when each was had.
DRAWER = """
import sys, time
from erpbridge.config.models import ChannelLimits
from erpbridge.engine.limits import ChannelLimiter
from erpbridge.store import create_hub_engine

url, count, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = create_hub_engine(url)
engine.connect().close()
limiter = ChannelLimiter(engine)
limits = ChannelLimits(requests_per_second=float(sys.argv[4]), burst=1)
print("ready", flush=True)
sys.stdin.readline()
with open(log, "a") as out:
    for _ in range(count):
        limiter.acquire_requests("erp", limits, timeout=30)
        out.write(f"{time.monotonic()!r}\\n")
        out.flush()
"""


@pytest.fixture
def store(hub_url: str) -> Iterator[Engine]:
    engine = open_store(hub_url)
    yield engine
    engine.dispose()


def bucket(engine: Engine, channel: str = "erp") -> float | None:
    with engine.connect() as conn:
        query = select(channel_tokens.c.tokens).where(channel_tokens.c.channel == channel)
        tokens: float | None = conn.execute(query).scalar_one_or_none()
        return tokens


def set_bucket(engine: Engine, tokens: float, age: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(channel_tokens)
            .where(channel_tokens.c.channel == "erp")
            .values(tokens=tokens, refilled_at=now() - age)
        )


def test_two_processes_share_one_rate(store: Engine, hub_url: str, tmp_path: Path) -> None:
    rate, log = 20.0, tmp_path / "acquired.log"
    with ExitStack() as stack:
        drawers = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", DRAWER, hub_url, str(count), str(log), str(rate)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            for count in (11, 10)
        ]
        stack.callback(lambda: [drawer.kill() for drawer in drawers])
        for drawer in drawers:
            assert drawer.stdout is not None and drawer.stdout.readline() == "ready\n"
        for drawer in drawers:  # both start drawing together
            assert drawer.stdin is not None
            drawer.stdin.write("go\n")
            drawer.stdin.flush()
        for drawer in drawers:
            drawer.communicate(timeout=60)
            assert drawer.returncode == 0
    times = sorted(float(line) for line in log.read_text().split())
    assert len(times) == 21
    # With burst 1, any k + 1 acquisitions span at least k / rate, whichever process had them
    # (the tolerance covers the moment between taking a token and logging it).
    tolerance = 0.05
    for (i, first), (j, last) in combinations(enumerate(times), 2):
        assert last - first >= (j - i) / rate - tolerance, (i, j)
    assert times[-1] - times[0] >= 1.0 - tolerance
    # The last draw took the one token the bucket had refilled.
    assert bucket(store) == pytest.approx(0.0)


def test_bucket_refills_at_the_rate_up_to_the_burst(store: Engine) -> None:
    limiter = ChannelLimiter(store)
    limits = ChannelLimits(requests_per_second=20, burst=5)
    limiter.acquire_requests("erp", limits)
    assert bucket(store) == 4.0  # created full, one taken
    set_bucket(store, 0.0, timedelta(seconds=0.1))
    limiter.acquire_requests("erp", limits, timeout=0)  # 0.1 s × 20/s refilled two
    tokens = bucket(store)
    # at least the two tokens of 0.1 s (more if this machine was slow to get here), minus one
    assert tokens is not None and 1.0 <= tokens < 4.0
    set_bucket(store, -3.0, timedelta(hours=1))
    limiter.acquire_requests("erp", limits, timeout=0)
    assert bucket(store) == 4.0  # an hour refills no more than the burst


def test_a_draw_larger_than_the_burst_leaves_a_debt(store: Engine) -> None:
    limiter = ChannelLimiter(store)
    # A slow rate keeps the arithmetic clear of scheduling delays on a busy machine.
    limits = ChannelLimits(requests_per_second=2, burst=2)
    limiter.acquire_requests("erp", limits, n=5)  # a full bucket lets a big batch through
    tokens = bucket(store)
    assert tokens is not None and -3.0 <= tokens < -2.5
    with pytest.raises(RetriableError) as caught:
        limiter.acquire_requests("erp", limits, timeout=0.05)
    # Four tokens short at 2/s: the delivery is retried in about 2 s.
    assert caught.value.retry_after == pytest.approx(2.0, abs=0.3)


def test_timeout_raises_a_retriable_error_without_sleeping_it_out(store: Engine) -> None:
    limiter = ChannelLimiter(store)
    limits = ChannelLimits(requests_per_second=0.5, burst=1)
    limiter.acquire_requests("erp", limits)
    started = time.monotonic()
    with pytest.raises(RetriableError, match="channel erp") as caught:
        limiter.acquire_requests("erp", limits, timeout=1.0)
    assert time.monotonic() - started < 1.0  # a two-second wait cannot fit: no point sleeping
    assert caught.value.retry_after == pytest.approx(2.0, abs=0.1)
    assert bucket(store) == pytest.approx(0.0, abs=0.05)  # the refused draw took nothing


def test_waits_for_the_next_token_within_the_timeout(store: Engine) -> None:
    limiter = ChannelLimiter(store)
    limits = ChannelLimits(requests_per_second=10, burst=1)
    limiter.acquire_requests("erp", limits)
    started = time.monotonic()
    limiter.acquire_requests("erp", limits, timeout=5)
    assert time.monotonic() - started >= 0.1 - 0.01


def test_no_rate_no_bucket(store: Engine) -> None:
    limiter = ChannelLimiter(store)
    limiter.acquire_requests("erp", None, n=1000, timeout=0)
    limiter.acquire_requests("erp", ChannelLimits(max_in_flight=1), n=1000, timeout=0)
    assert bucket(store) is None


def add_deliveries(engine: Engine, *rows: tuple[str, str, timedelta | None]) -> None:
    """One delivery per (channel, state, lease left) of one record; flow ``<channel>-out``."""
    at = now()
    stamps = {"created_at": at, "updated_at": at}
    with engine.begin() as conn:
        record = {"entity": "customer", "key": "C1", "version": 1}
        inserted = conn.execute(
            insert(records).values(**record, **stamps, content_hash="0" * 32, payload="{}")
        )
        ledger = [
            {
                **record,
                **stamps,
                "flow": f"{channel}-out",
                "channel": channel,
                "record_id": inserted.inserted_primary_key[0],
                "ordering_key": f"{channel}-out|customer|{number}",  # heads of their own keys
                "idempotency_key": f"{channel}-out|{number}",
                "priority": 0,
                "state": state,
                "attempts": 0,
                "max_attempts": 10,
                "next_attempt_at": at,
                "fence": 0,
                "lease_owner": None if lease_left is None else "elsewhere",
                "lease_expires_at": None if lease_left is None else at + lease_left,
            }
            for number, (channel, state, lease_left) in enumerate(rows)
        ]
        conn.execute(insert(deliveries), ledger)


def allowance(engine: Engine, limits: ChannelLimits | None, wanted: int) -> int:
    with engine.begin() as conn:
        return ChannelLimiter(engine).in_flight_allowance(conn, "erp", limits, wanted)


def test_in_flight_allowance_counts_unexpired_in_flight_deliveries_of_the_channel(
    store: Engine,
) -> None:
    hour = timedelta(hours=1)
    add_deliveries(
        store,
        ("erp", "in_flight", hour),
        ("erp", "in_flight", hour),
        ("erp", "in_flight", -hour),  # its worker is gone: claim() hands it out again
        ("erp", "pending", None),
        ("erp", "failed", None),
        ("erp", "delivered", None),
        ("other", "in_flight", hour),
        ("other", "in_flight", hour),
    )
    assert allowance(store, ChannelLimits(max_in_flight=5), 10) == 3
    assert allowance(store, ChannelLimits(max_in_flight=5), 2) == 2
    assert allowance(store, ChannelLimits(max_in_flight=2), 10) == 0
    assert allowance(store, ChannelLimits(max_in_flight=1), 10) == 0  # never below zero
    assert allowance(store, ChannelLimits(requests_per_second=1), 10) == 10
    assert allowance(store, None, 10) == 10


def test_two_claimers_cannot_both_take_the_last_slot(store: Engine) -> None:
    hour = timedelta(hours=1)
    add_deliveries(store, ("erp", "in_flight", hour), *[("erp", "pending", None)] * 4)
    limits = ChannelLimits(max_in_flight=2)
    limiter = ChannelLimiter(store)
    seen: list[int] = []

    def second_claimer() -> None:
        with store.begin() as conn:
            seen.append(limiter.in_flight_allowance(conn, "erp", limits, 5))

    other = threading.Thread(target=second_claimer)
    with store.begin() as conn:
        room = limiter.in_flight_allowance(conn, "erp", limits, 5)
        assert room == 1
        assert len(claim(conn, "first", room, timedelta(seconds=60), now(), ["erp-out"])) == 1
        other.start()
        other.join(0.3)
        assert other.is_alive()  # waits for this claim to commit
    other.join(10)
    assert seen == [0]
