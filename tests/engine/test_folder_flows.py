"""IN flows end to end from a real drop folder into the hub, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.store.tables import audit, bindings, records, rejected, runs

CONFIG = """
hub:
  database_url: {url}
entities:
  vehicle:
    key: [vin]
    fields:
      vin: {{type: string, required: true, pattern: "[A-HJ-NPR-Z0-9]{{17}}"}}
      model: {{type: string}}
      first_registration: {{type: date}}
      mileage_km: {{type: integer, minimum: 0}}
channels:
  shop:
    system: folder
    options: {{path: inbox}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "customers*.csv", delimiter: ";"}}
    key: KdNr
    batch_size: 2
    mapping:
      code: {{from: KdNr, transforms: [trim]}}
      name: {{template: "{{Vorname}} {{Nachname}}", transforms: [collapse_spaces]}}
      credit_limit: {{from: Limit, transforms: [{limit_transform}]}}
      locked: {{from: Sperre, map: {{J: true, N: false}}, fallback: false}}
      addresses:
        each: Adressen
        fields: {{city: Ort, country: {{from: Land, transforms: [upper]}}}}
  - name: vehicles-in
    channel: shop
    entity: vehicle
    direction: in
    source: {{pattern: "vehicles*.json", records_path: data}}
    mapping:
      vin: VIN
      model: Model
      first_registration: {{from: FirstReg, transforms: [{{date: "%d.%m.%Y"}}]}}
      mileage_km: {{from: Miles, unit: {{from: mi, to: km}}, round: 0}}
"""


def write_config(folder: Path, url: str, limit_transform: str = '{decimal: ","}') -> Path:
    path = folder / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=url, limit_transform=limit_transform), encoding="utf-8")
    (folder / "inbox").mkdir(exist_ok=True)
    return path


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> Iterator[tuple[Path, Engine]]:
    config_path = write_config(tmp_path, hub_url)
    engine = open_store(hub_url)
    yield config_path, engine
    engine.dispose()


def drop(folder: Path, name: str, text: str) -> None:
    (folder / "inbox" / name).write_text(text, encoding="utf-8")


def payload(engine: Engine, entity: str, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one()
    result: dict[str, Any] = orjson.loads(row)
    return result


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


CSV = (
    "KdNr;Vorname;Nachname;Limit;Sperre\n"
    " 1;Anna;Schmidt;1.000,50;N\n2;Bob;Meier;abc;J\n3;Cleo; Wu;;X\n"
)


def test_csv_lands_mapped_bound_and_audited(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    drop(config_path.parent, "customers1.csv", CSV)
    runner = FlowRunner(load_config(config_path), engine)

    result = runner.run("customers-in")

    assert (result.status, result.read, result.created, result.rejected) == ("succeeded", 3, 2, 1)
    assert payload(engine, "customer", "1") == {
        "code": "1",
        "name": "Anna Schmidt",
        "credit_limit": "1000.5",
        "locked": False,
    }
    assert payload(engine, "customer", "3")["locked"] is False  # 'X' took the fallback
    assert count(engine, bindings, bindings.c.channel == "shop") == 2
    assert count(engine, audit, audit.c.action == "created") == 2
    with engine.connect() as conn:
        bad = conn.execute(select(rejected)).one()
    assert (bad.position, bad.field_path, bad.status) == (
        "customers1.csv:3",
        "credit_limit",
        "open",
    )
    assert "not a number: 'abc'" in bad.reason
    assert orjson.loads(bad.payload)["KdNr"] == "2"
    inbox = config_path.parent / "inbox"
    assert not (inbox / "customers1.csv").exists()
    assert (inbox / "archive" / "customers1.csv").exists()


def test_second_run_of_the_same_data_writes_nothing(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    runner = FlowRunner(load_config(config_path), engine)
    drop(config_path.parent, "customers1.csv", CSV)
    runner.run("customers-in")
    drop(config_path.parent, "customers1.csv", CSV)

    again = runner.run("customers-in")

    assert (again.read, again.created, again.updated, again.unchanged) == (3, 0, 0, 2)
    assert count(engine, audit) == 2
    with engine.connect() as conn:
        assert set(conn.execute(select(records.c.version)).scalars()) == {1}
        # the repeated bad row supersedes its first rejection instead of piling up
        statuses = sorted(conn.execute(select(rejected.c.status)).scalars())
    assert statuses == ["open", "superseded"]


def test_a_change_makes_a_new_version_with_changed_fields(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    runner = FlowRunner(load_config(config_path), engine)
    drop(config_path.parent, "customers1.csv", CSV)
    runner.run("customers-in")
    drop(
        config_path.parent,
        "customers2.csv",
        "KdNr;Vorname;Nachname;Limit;Sperre\n1;Anna;Schmidt-Lang;2000;J\n",
    )

    result = runner.run("customers-in")

    assert (result.updated, result.created) == (1, 0)
    with engine.connect() as conn:
        row = conn.execute(select(records).where(records.c.key == "1")).one()
        history = conn.execute(
            select(audit).where(audit.c.record_id == row.id).order_by(audit.c.version)
        ).all()
    assert row.version == 2
    assert [h.action for h in history] == ["created", "updated"]
    assert orjson.loads(history[1].changed_fields) == ["credit_limit", "locked", "name"]
    assert history[1].source_position == "customers2.csv:2"
    assert history[1].run_id == result.run_id


def test_nested_lists_and_a_declared_entity(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    runner = FlowRunner(load_config(config_path), engine)
    drop(
        config_path.parent,
        "vehicles1.json",
        orjson.dumps(
            {
                "data": [
                    {
                        "VIN": "WVWZZZ1JZXW000001",
                        "Model": "Golf",
                        "FirstReg": "01.03.2021",
                        "Miles": "1000",
                    },
                    {"VIN": "TOO-SHORT", "Model": "Polo"},
                ]
            }
        ).decode(),
    )

    result = runner.run("vehicles-in")

    assert (result.created, result.rejected) == (1, 1)
    assert payload(engine, "vehicle", "WVWZZZ1JZXW000001") == {
        "vin": "WVWZZZ1JZXW000001",
        "model": "Golf",
        "first_registration": "2021-03-01",
        "mileage_km": 1609,
    }
    with engine.connect() as conn:
        reason = conn.execute(select(rejected.c.reason)).scalar_one()
    assert "does not match" in reason


def test_replay_after_a_mapping_fix(hub: tuple[Path, Engine], hub_url: str) -> None:
    config_path, engine = hub
    drop(config_path.parent, "customers1.csv", CSV)
    FlowRunner(load_config(config_path), engine).run("customers-in")
    # The fix: unparseable limits become empty instead of rejecting the customer.
    write_config(
        config_path.parent, hub_url, limit_transform='{regex: "^[0-9.,]+$"}, {decimal: ","}'
    )

    results = FlowRunner(load_config(config_path), engine).replay_rejected()

    assert [(r.flow, r.mode, r.created, r.rejected) for r in results] == [
        ("customers-in", "replay", 1, 0)
    ]
    assert payload(engine, "customer", "2") == {"code": "2", "name": "Bob Meier", "locked": True}
    with engine.connect() as conn:
        assert conn.execute(select(rejected.c.status)).scalar_one() == "replayed"


def test_dry_run_commits_nothing_and_leaves_the_file(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    drop(config_path.parent, "customers1.csv", CSV)

    result = FlowRunner(load_config(config_path), engine).run("customers-in", dry_run=True)

    assert (result.read, result.created, result.rejected) == (3, 2, 1)
    assert count(engine, records) == 0
    assert count(engine, rejected) == 0
    assert (config_path.parent / "inbox" / "customers1.csv").exists()
    with engine.connect() as conn:
        assert conn.execute(select(runs.c.dry_run)).scalar_one() is True


def test_broken_file_is_a_visible_rejection(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    drop(config_path.parent, "customers1.csv", "Nummer;Name\n1;x\n")
    drop(config_path.parent, "customers2.csv", CSV)

    result = FlowRunner(load_config(config_path), engine).run("customers-in")

    assert (result.status, result.created) == ("succeeded", 2)
    with engine.connect() as conn:
        file_problem = conn.execute(
            select(rejected).where(rejected.c.position == "customers1.csv")
        ).one()
    assert "header lacks" in file_problem.reason and "KdNr" in file_problem.reason
    error_dir = config_path.parent / "inbox" / "error"
    assert (error_dir / "customers1.csv").exists()
    assert "KdNr" in (error_dir / "customers1.csv.reason.txt").read_text(encoding="utf-8")


def test_missing_inbox_fails_the_run_with_the_place(hub: tuple[Path, Engine]) -> None:
    config_path, engine = hub
    (config_path.parent / "inbox").rmdir()

    result = FlowRunner(load_config(config_path), engine).run("customers-in")

    assert result.status == "failed"
    assert result.error is not None
    assert "customers-in" in result.error and "shop" in result.error and "inbox" in result.error
    with engine.connect() as conn:
        stored = conn.execute(select(runs.c.status, runs.c.error)).one()
    assert stored.status == "failed" and "inbox" in stored.error


def test_a_replay_that_fails_again_keeps_one_open_row_with_the_new_reason(
    hub: tuple[Path, Engine], hub_url: str
) -> None:
    config_path, engine = hub
    drop(config_path.parent, "customers1.csv", CSV)
    FlowRunner(load_config(config_path), engine).run("customers-in")
    # A "fix" that still fails, differently: the reason must follow.
    write_config(config_path.parent, hub_url, limit_transform='{prefix: "x"}, {decimal: ","}')

    results = FlowRunner(load_config(config_path), engine).replay_rejected()

    assert [(r.created, r.rejected) for r in results] == [(0, 1)]
    with engine.connect() as conn:
        rows = conn.execute(select(rejected)).all()
    assert len(rows) == 1 and rows[0].status == "open"
    assert rows[0].reason.startswith("not a number: 'xabc'")
    assert rows[0].position == "customers1.csv:3"


def test_replayed_records_name_their_rejection_in_the_audit_trail(
    hub: tuple[Path, Engine], hub_url: str
) -> None:
    config_path, engine = hub
    drop(config_path.parent, "customers1.csv", CSV)
    FlowRunner(load_config(config_path), engine).run("customers-in")
    write_config(
        config_path.parent, hub_url, limit_transform='{regex: "^[0-9.,]+$"}, {decimal: ","}'
    )
    FlowRunner(load_config(config_path), engine).replay_rejected()
    with engine.connect() as conn:
        position = conn.execute(
            select(audit.c.source_position).where(audit.c.key == "2")
        ).scalar_one()
    assert position == "customers1.csv:3 (rejection 1)"
