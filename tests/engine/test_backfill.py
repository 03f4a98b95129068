"""Backfill and replay of an OUT flow (issue 21): what the hub holds reaches a flow added later,
once per version, below live traffic, in per-key order, resumable; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.backfill import (
    BackfillRefused,
    BackfillRequest,
    Filler,
    ReplayRequest,
)
from erpbridge.engine.worker import Worker
from erpbridge.moments import BadMoment, parse_moment
from erpbridge.store.backfill import progress
from erpbridge.store.deliveries import claim
from erpbridge.store.runs import now
from erpbridge.store.tables import deliveries, runs

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  shop:
    system: folder
    options: {{path: inbox}}
  erp:
    system: folder
    options: {{path: "{erp_path}"}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    key: id
    mapping: {{code: id, name: name, currency: currency}}
"""

OUT_FLOW = """
  - name: customers-to-erp
    channel: erp
    entity: customer
    direction: out
    target: {format: json, subfolder: customers}
    mapping: {KUNNR: code, NAME1: name}
"""


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> Iterator[tuple[Path, Engine]]:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erp").mkdir()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=hub_url, erp_path=tmp_path / "erp"), encoding="utf-8")
    engine = open_store(hub_url)
    yield path, engine
    engine.dispose()


def sync(config_path: Path, engine: Engine, csv: str) -> None:
    (config_path.parent / "inbox" / "c.csv").write_text(csv, encoding="utf-8")
    result = FlowRunner(load_config(config_path), engine).run("customers-in")
    assert result.status == "succeeded", result.error


def add_out_flow(config_path: Path, extra: str = "") -> None:
    config_path.write_text(config_path.read_text() + OUT_FLOW + extra, encoding="utf-8")


def deliver(config_path: Path, engine: Engine) -> Any:
    worker = Worker(load_config(config_path), engine)
    try:
        return worker.run_once()
    finally:
        worker.close()


def ledger(engine: Engine) -> list[tuple[str, int, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.key, deliveries.c.version, deliveries.c.state,
                   deliveries.c.priority)
            .where(deliveries.c.flow == "customers-to-erp")
            .order_by(deliveries.c.id)
        )  # fmt: skip
        return [tuple(r) for r in rows]  # type: ignore[misc]


def written(config_path: Path) -> set[str]:
    return {p.name for p in (config_path.parent / "erp" / "customers").glob("*.json")}


CUSTOMERS = "id,name,currency\n" + "".join(
    f"C{i},Name {i},{'EUR' if i % 2 else 'USD'}\n" for i in range(1, 26)
)


def test_backfill_delivers_what_the_hub_held_before_the_flow_existed(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    sync(config_path, engine, CUSTOMERS)
    sync(config_path, engine, "id,name,currency\nC1,Anna,EUR\n")  # C1 is at v2
    add_out_flow(config_path)
    assert ledger(engine) == []  # a new OUT flow only sees versions written after it exists

    filler = Filler(load_config(config_path), engine, batch_size=7)
    result = filler.backfill(BackfillRequest("customers-to-erp"))

    assert (result.status, result.scanned, result.queued, result.skipped) == (
        "succeeded",
        25,
        25,
        0,
    )
    assert {(k, v) for k, v, _, _ in ledger(engine)} == {("C1", 2)} | {
        (f"C{i}", 1) for i in range(2, 26)
    }
    assert {p for _, _, _, p in ledger(engine)} == {-1000}  # below any flow's own priority
    with engine.connect() as conn:
        run = conn.execute(select(runs).where(runs.c.id == result.run_id)).one()
        assert (run.mode, run.status, run.read, run.created) == ("backfill", "succeeded", 25, 25)
        assert progress(conn, result.run_id) == {"pending": 25}
    deliver(config_path, engine)
    assert written(config_path) == {"customer-C1-v2.json"} | {
        f"customer-C{i}-v1.json" for i in range(2, 26)
    }
    with engine.connect() as conn:
        assert progress(conn, result.run_id) == {"delivered": 25}

    again = filler.backfill(BackfillRequest("customers-to-erp"))  # nothing new: nothing queued
    assert (again.scanned, again.queued, again.skipped) == (25, 0, 25)
    sync(config_path, engine, "id,name,currency\nC2,Bea,USD\n")  # live v2, delivered live
    deliver(config_path, engine)
    third = filler.backfill(BackfillRequest("customers-to-erp"))
    assert third.queued == 0


def test_where_changed_since_and_dry_run(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, CUSTOMERS)
    middle = now()
    sync(config_path, engine, "id,name,currency\nC3,Cleo,EUR\nC4,Dan,USD\n")
    add_out_flow(config_path)
    filler = Filler(load_config(config_path), engine)

    dry = filler.backfill(BackfillRequest("customers-to-erp", (("currency", "EUR"),), dry_run=True))
    assert (dry.queued, dry.dry_run) == (13, True)
    assert ledger(engine) == []

    germans = filler.backfill(BackfillRequest("customers-to-erp", (("currency", "EUR"),)))
    assert germans.queued == 13
    recent = filler.backfill(BackfillRequest("customers-to-erp", changed_since=middle))
    assert (recent.scanned, recent.queued) == (2, 1)  # C3 (EUR) was queued already
    assert ledger(engine)[-1][:2] == ("C4", 2)


def test_claims_prefer_live_and_a_live_version_supersedes_a_waiting_backfilled_one(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    sync(config_path, engine, CUSTOMERS)
    add_out_flow(config_path)
    Filler(load_config(config_path), engine).backfill(BackfillRequest("customers-to-erp"))
    sync(config_path, engine, "id,name,currency\nC20,Zoe,EUR\nC99,New,EUR\n")  # live changes

    with engine.begin() as conn:
        first = claim(conn, "w", 2, __import__("datetime").timedelta(seconds=30), now())
    assert sorted((c.key, c.version) for c in first) == [("C20", 2), ("C99", 1)]
    states = {(k, v): s for k, v, s, _ in ledger(engine)}
    assert states[("C20", 1)] == "cancelled"  # the backfilled v1 never goes out after v2
    with engine.connect() as conn:
        why = conn.execute(
            select(deliveries.c.last_error).where(
                deliveries.c.key == "C20", deliveries.c.version == 1
            )
        ).scalar_one()
    assert why.startswith("superseded")


def test_a_failed_backfill_resumes_where_it_stopped(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    sync(config_path, engine, CUSTOMERS)
    add_out_flow(config_path)
    filler = Filler(load_config(config_path), engine, batch_size=5)
    calls = []

    def crash(result: Any) -> None:
        calls.append(result.scanned)
        if len(calls) == 2:
            raise RuntimeError("store went away")

    first = filler.backfill(BackfillRequest("customers-to-erp"), crash)
    assert (first.status, first.queued) == ("failed", 10)
    second = filler.backfill(BackfillRequest("customers-to-erp"))
    assert (second.status, second.resumed_from, second.scanned, second.queued) == (
        "succeeded", first.run_id, 15, 15,
    )  # fmt: skip
    assert len(ledger(engine)) == 25


def test_replay_sends_every_version_in_the_range_in_order_then_the_current_one(
    hub: tuple[Path, Engine],
) -> None:
    config_path, engine = hub
    add_out_flow(config_path)
    sync(config_path, engine, "id,name,currency\nC1,A1,EUR\nC2,B1,EUR\n")
    start = now()
    sync(config_path, engine, "id,name,currency\nC1,A2,EUR\n")
    sync(config_path, engine, "id,name,currency\nC1,A3,EUR\nC2,B2,EUR\n")
    end = now()
    sync(config_path, engine, "id,name,currency\nC1,A4,EUR\n")
    deliver(config_path, engine)
    before = len(ledger(engine))

    result = Filler(load_config(config_path), engine).replay(
        ReplayRequest("customers-to-erp", start, end)
    )

    assert (result.status, result.scanned, result.queued) == ("succeeded", 4, 4)
    replayed = [(k, v) for k, v, _, _ in ledger(engine)[before:]]
    assert replayed == [("C1", 2), ("C1", 3), ("C2", 2), ("C1", 4)]
    deliver(config_path, engine)
    assert {s for _, _, s, _ in ledger(engine)} == {"delivered"}


def test_hostile_requests_are_refused_with_the_cause(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    add_out_flow(config_path)
    filler = Filler(load_config(config_path), engine)
    with pytest.raises(BackfillRefused, match="no flow named 'nope'"):
        filler.backfill(BackfillRequest("nope"))
    with pytest.raises(BackfillRefused, match="'customers-in' is an IN flow"):
        filler.backfill(BackfillRequest("customers-in"))
    with pytest.raises(BadMoment, match="--to 'yesterday': not a time"):
        parse_moment("--to", "yesterday")
    later = parse_moment("--from", "2026-12-07T10:00:00+01:00")
    assert later.isoformat() == "2026-12-07T09:00:00+00:00"
    with pytest.raises(BackfillRefused, match="is after --to"):
        filler.replay(ReplayRequest("customers-to-erp", later, parse_moment("--to", "2026-12-06")))
    with engine.connect() as conn:
        assert conn.execute(select(runs.c.id).where(runs.c.mode != "incremental")).all() == []
