"""The store side of webhook replays, on SQLite and PostgreSQL: spent signatures (kept until they
expire, shared by every process) and the version order that keeps an older payload from
overwriting a newer one (events and runs go through the same upsert)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.ordering import is_older
from erpbridge.store.tables import audit, records, runs, webhook_signatures
from erpbridge.store.webhooks import claim_signature, release_signature

T0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


@pytest.fixture
def engine(hub_url: str) -> Iterator[Engine]:
    engine = open_store(hub_url)
    yield engine
    engine.dispose()


def kept(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_signatures)).scalar_one())


def test_a_signature_is_spent_once_until_it_expires(engine: Engine) -> None:
    until = T0 + timedelta(seconds=300)
    assert claim_signature(engine, "shop", "sha256=ab", at=T0, expires_at=until)
    assert not claim_signature(engine, "shop", "sha256=ab", at=T0, expires_at=until)
    assert claim_signature(engine, "other", "sha256=ab", at=T0, expires_at=until)
    release_signature(engine, "other", "sha256=ab")
    assert claim_signature(engine, "other", "sha256=ab", at=T0, expires_at=until)
    assert kept(engine) == 2
    # Once out of the window, the rows go as the next signature arrives.
    later = until + timedelta(seconds=1)
    assert claim_signature(engine, "shop", "sha256=cd", at=later, expires_at=later)
    assert kept(engine) == 1


CONFIG = """
hub:
  database_url: {url}
entities:
  article:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: {{type: string}}
      meta: {{type: object, fields: {{changed: {{type: datetime}}}}}}
flows:
  - name: by-time
    channel: shop
    entity: article
    direction: in
    version_field: meta.changed
  - name: unordered
    channel: shop
    entity: article
    direction: in
channels:
  shop:
    system: platform
"""


@pytest.fixture
def runner(tmp_path: Path, hub_url: str, engine: Engine) -> FlowRunner:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    return FlowRunner(load_config(path), engine)


def item(name: str, changed: Any) -> dict[str, Any]:
    return {"code": "A-1", "name": name, "meta": {"changed": changed}}


def stored(engine: Engine) -> tuple[str, int, int]:
    with engine.connect() as conn:
        row = conn.execute(select(records.c.payload, records.c.version)).one()
        versions = conn.execute(select(func.count()).select_from(audit)).scalar_one()
    return orjson.loads(row.payload)["name"], row.version, versions


def test_an_older_payload_never_overwrites_a_newer_one(runner: FlowRunner, engine: Engine) -> None:
    runner.ingest("by-time", [item("v2", "2026-12-07T05:00:00+01:00")], "event:t")
    # One request holding an older and a newer version; then the older alone, late.
    both = runner.ingest(
        "by-time",
        [item("v1", "2026-12-07T03:30:00Z"), item("v3", "2026-12-07T04:30:00Z")],
        "event:t",
    )
    assert (both.updated, both.stale) == (1, 1)
    late = runner.ingest("by-time", [item("v1", "2026-12-07T03:59:59Z")], "event:t")
    assert (late.created, late.updated, late.unchanged, late.stale) == (0, 0, 0, 1)
    assert stored(engine) == ("v3", 2, 2)
    with engine.connect() as conn:
        counted = conn.execute(select(runs.c.stale).order_by(runs.c.id)).scalars().all()
    assert counted == [0, 1, 1]
    # A flow without version_field applies whatever comes last.
    runner.ingest("unordered", [item("v0", "2000-01-01T00:00:00Z")], "event:t")
    assert stored(engine) == ("v0", 3, 3)


@pytest.mark.parametrize(
    ("incoming", "stored_value", "older"),
    [
        ("2026-12-07T03:00:00Z", "2026-12-07T04:00:00+00:00", True),
        ("2026-12-07T05:00:00+02:00", "2026-12-07T04:00:00Z", True),  # 03:00 UTC
        ("2026-12-07T04:00:00", "2026-12-07T04:00:00Z", False),  # no zone: UTC, equal
        ("2026-12-06", "2026-12-07T00:00:01Z", True),
        (9, 10, True),
        ("9", "10", True),  # numeric text compares as numbers, not as text
        (Decimal("10.5"), 10, False),
        (datetime(2026, 1, 1), "2026-12-07T00:00:00Z", True),
        (None, 10, False),
        (3, None, False),
        ("abc", "abd", False),  # cannot be ordered: never blocks a change
        (3, "2026-12-07", False),
        (True, 2, False),
        ("NaN", "1", False),
    ],
)
def test_version_order(incoming: Any, stored_value: Any, older: bool) -> None:
    assert is_older("v", {"v": incoming}, {"v": stored_value}) is older
