"""The dashboard's read (``store.read.dashboard.flow_activity``) on a store with known rows: the
last day's deliveries counted per flow (older ones and other states not), the backlog by state
with its oldest and newest times, flows without rows absent, a channel-restricted reader seeing
their channels' flows only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from erpbridge.store import open_store
from erpbridge.store.read import Scope, flow_activity
from erpbridge.store.tables import deliveries, records

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


def _deliver(engine: Engine, rows: list[tuple[str, str, str, timedelta]]) -> None:
    """(flow, channel, state, age) per delivery; delivered ones went out at that age."""
    with engine.begin() as conn:
        record = conn.execute(
            insert(records)
            .values(entity="customer", key="C1", version=1, content_hash="h", payload="{}",
                    created_at=AT, updated_at=AT)
            .returning(records.c.id)
        ).scalar_one()  # fmt: skip
        for number, (flow, channel, state, age) in enumerate(rows):
            moment = AT - age
            conn.execute(
                insert(deliveries).values(
                    flow=flow, channel=channel, entity="customer", record_id=record, key="C1",
                    version=1, ordering_key=f"{flow}/C1", idempotency_key=f"{flow}/{number}",
                    priority=0, state=state, attempts=1, max_attempts=3, next_attempt_at=moment,
                    fence=0, created_at=moment, updated_at=moment,
                    delivered_at=moment if state == "delivered" else None,
                )
            )  # fmt: skip


def test_the_last_day_and_the_backlog_per_flow(engine: Engine) -> None:
    hour, days = timedelta(hours=1), timedelta(days=2)
    _deliver(
        engine,
        [
            ("erp-out", "erp", "delivered", hour),
            ("erp-out", "erp", "delivered", 3 * hour),
            ("erp-out", "erp", "delivered", days),  # before the last day
            ("erp-out", "erp", "pending", 5 * hour),
            ("erp-out", "erp", "pending", 2 * hour),
            ("erp-out", "erp", "dead", 4 * hour),
            ("shop-out", "shop", "delivered", 2 * hour),
            ("shop-out", "shop", "failed", hour),
            ("gone-out", "erp", "delivered", hour),  # not a configured flow any more
        ],
    )
    with engine.connect() as conn:
        seen = flow_activity(conn, Scope(), AT, ["erp-out", "shop-out", "quiet-out"])
    erp, shop = seen["erp-out"], seen["shop-out"]
    assert (erp.records_out, erp.last_delivered_at) == (2, AT - hour)
    assert erp.backlog == {"pending": 2, "dead": 1}
    assert erp.oldest_pending_at == AT - 5 * hour and erp.last_dead_at == AT - 4 * hour
    assert (shop.records_out, shop.backlog, shop.delivery_failing) == (1, {"failed": 1}, True)
    assert "quiet-out" not in seen and "gone-out" not in seen
    restricted = Scope.restricted(frozenset({"shop"}), {"erp-out": "erp", "shop-out": "shop"}, None)
    with engine.connect() as conn:
        mine = flow_activity(conn, restricted, AT, ["erp-out", "shop-out"])
    assert set(mine) == {"shop-out"} and mine["shop-out"].records_out == 1
