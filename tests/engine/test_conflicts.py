"""Two-way flows: a change from the ERP meets the hub's own change still on its way to the ERP.

Both sides are real folders: the shop drops customers IN, the ERP drops its own changes IN and
receives the hub's OUT; each policy is shown on both store dialects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import conflicts, deliveries, records

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  shop: {{system: folder, options: {{path: shop}}}}
  erp: {{system: folder, options: {{path: erp}}}}
flows:
  - name: customers-from-shop
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    mapping: {{code: id, name: name, updated_at: changed}}
  - name: customers-from-erp
    channel: erp
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    conflict: {policy}
    mapping: {{code: id, name: name, updated_at: changed}}
  - name: customers-to-erp
    channel: erp
    entity: customer
    direction: out
    target: {{subfolder: out}}
"""


def setup(tmp_path: Path, url: str, policy: str) -> tuple[Path, Engine]:
    for folder in ("shop", "erp"):
        (tmp_path / folder).mkdir(exist_ok=True)
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=url, policy=policy), encoding="utf-8")
    return path, open_store(url)


@pytest.fixture
def world(tmp_path: Path, hub_url: str) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(policy: str) -> tuple[Path, Engine]:
        path, engine = setup(tmp_path, hub_url, policy)
        engines.append(engine)
        return path, engine

    yield make
    for engine in engines:
        engine.dispose()


def drop(path: Path, channel: str, name: str, changed: str) -> None:
    (path.parent / channel / "c.csv").write_text(f"id,name,changed\nC1,{name},{changed}\n")


def run(path: Path, engine: Engine, flow: str) -> Any:
    return FlowRunner(load_config(path), engine).run(flow)


def name_in_hub(engine: Engine) -> str:
    with engine.connect() as conn:
        payload = conn.execute(select(records.c.payload)).scalar_one()
    return str(orjson.loads(payload)["name"])


def to_erp(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.version, deliveries.c.state)
            .where(deliveries.c.flow == "customers-to-erp")
            .order_by(deliveries.c.id)
        ).all()
    return [(r.version, r.state) for r in rows]


def both_sides_changed(path: Path, engine: Engine, erp_changed: str) -> Any:
    drop(path, "shop", "Anna (shop)", "2026-01-01T10:00:00")
    run(path, engine, "customers-from-shop")  # v1 → queued for the ERP
    drop(path, "erp", "Anna (erp)", erp_changed)
    return run(path, engine, "customers-from-erp")  # the ERP changed it too, before delivery


def test_without_a_pending_delivery_there_is_no_conflict(world: Any) -> None:
    path, engine = world("manual")
    drop(path, "shop", "Anna", "2026-01-01T10:00:00")
    run(path, engine, "customers-from-shop")
    worker = Worker(load_config(path), engine)
    worker.run_once()
    worker.close()
    drop(path, "erp", "Anna (erp)", "2026-01-01T11:00:00")
    result = run(path, engine, "customers-from-erp")
    assert (result.updated, result.conflicts) == (1, 0)
    assert name_in_hub(engine) == "Anna (erp)"


def test_source_wins_applies_and_cancels_the_stale_delivery(world: Any) -> None:
    path, engine = world("source_wins")
    result = both_sides_changed(path, engine, "2026-01-01T09:00:00")
    assert (result.updated, result.conflicts) == (1, 1)
    assert name_in_hub(engine) == "Anna (erp)"
    assert to_erp(engine) == [(1, "cancelled")]  # no echo of the ERP's own change either


def test_target_wins_keeps_the_hub_version_going_out(world: Any) -> None:
    path, engine = world("target_wins")
    result = both_sides_changed(path, engine, "2026-01-01T11:00:00")
    assert (result.updated, result.conflicts) == (0, 1)
    assert name_in_hub(engine) == "Anna (shop)"
    assert to_erp(engine) == [(1, "pending")]
    with engine.connect() as conn:
        settled = conn.execute(select(conflicts)).one()
    assert (settled.status, settled.winner) == ("resolved", "hub")


@pytest.mark.parametrize(
    ("erp_time", "winner"),
    [("2026-01-01T11:00:00", "Anna (erp)"), ("2026-01-01T09:00:00", "Anna (shop)")],
)
def test_newest_wins_compares_updated_at(world: Any, erp_time: str, winner: str) -> None:
    path, engine = world("newest_wins")
    both_sides_changed(path, engine, erp_time)
    assert name_in_hub(engine) == winner


def test_manual_holds_everything_until_someone_decides(world: Any) -> None:
    path, engine = world("manual")
    result = both_sides_changed(path, engine, "2026-01-01T11:00:00")
    assert (result.updated, result.conflicts) == (0, 1)
    assert to_erp(engine) == [(1, "held")]
    worker = Worker(load_config(path), engine)
    assert worker.run_once().claimed == 0  # held: not delivered while the conflict is open
    with engine.connect() as conn:
        conflict_id = conn.execute(select(conflicts.c.id)).scalar_one()

    FlowRunner(load_config(path), engine).resolve_conflict(conflict_id, "source")

    assert name_in_hub(engine) == "Anna (erp)"
    assert to_erp(engine) == [(1, "cancelled")]  # v2 came from the ERP: not echoed back
    assert worker.run_once().claimed == 0
    worker.close()
    with pytest.raises(LookupError):
        FlowRunner(load_config(path), engine).resolve_conflict(conflict_id, "hub")


def test_manual_settled_for_the_hub_releases_the_delivery(world: Any) -> None:
    path, engine = world("manual")
    both_sides_changed(path, engine, "2026-01-01T11:00:00")
    with engine.connect() as conn:
        conflict_id = conn.execute(select(conflicts.c.id)).scalar_one()
    FlowRunner(load_config(path), engine).resolve_conflict(conflict_id, "hub")
    worker = Worker(load_config(path), engine)
    assert worker.run_once().delivered == 1
    worker.close()
    out = orjson.loads((path.parent / "erp" / "out" / "customer-C1-v1.json").read_bytes())
    assert out["name"] == "Anna (shop)"
