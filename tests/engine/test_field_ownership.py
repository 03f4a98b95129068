"""Field ownership: an IN flow changes the fields it maps (a merge), `replace: true` takes whole
records, and an entity's `owners:` keeps a field to one channel (ignored or a conflict, per the
flow's policy). The audit shows which flow set each field, in the API and the CLI.

Both sides are real folders (the ERP and the shop drop CSV files), on both store dialects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from api.conftest import ApiClient
from erpbridge import FlowRunner, load_config, open_store
from erpbridge.api import build_hub, create_app
from erpbridge.cli import app
from erpbridge.engine.worker import Worker
from erpbridge.store.apiclients import create_client
from erpbridge.store.tables import audit, conflicts, deliveries, records

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  shop: {{system: folder, options: {{path: shop}}}}
  erp: {{system: folder, options: {{path: erp}}}}
{owners}
flows:
  - name: customers-from-erp
    channel: erp
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    replace: {replace}
    mapping: {{code: id, name: name, email: email}}
  - name: lock-from-shop
    channel: shop
    entity: customer
    direction: in
    source: {{pattern: "*.csv"}}
    {conflict}
    mapping: {{code: id, name: name, locked: locked, lock_reason: reason}}
  - name: customers-to-shop
    channel: shop
    entity: customer
    direction: out
    target: {{subfolder: out}}
"""


@pytest.fixture
def world(tmp_path: Path, hub_url: str) -> Iterator[Any]:
    engines: list[Engine] = []

    def make(owners: str = "", replace: bool = False, conflict: str = "") -> tuple[Path, Engine]:
        for folder in ("shop", "erp"):
            (tmp_path / folder).mkdir(exist_ok=True)
        path = tmp_path / "erpbridge.yaml"
        text = CONFIG.format(
            url=hub_url,
            owners=owners,
            replace=str(replace).lower(),
            conflict=f"conflict: {conflict}" if conflict else "",
        )
        path.write_text(text, encoding="utf-8")
        engine = open_store(hub_url)
        engines.append(engine)
        return path, engine

    yield make
    for engine in engines:
        engine.dispose()


def erp(path: Path, name: str, email: str) -> None:
    (path.parent / "erp" / "c.csv").write_text(f"id,name,email\nC1,{name},{email}\n")


def shop(path: Path, name: str, reason: str) -> None:
    locked = "true" if reason else "false"
    (path.parent / "shop" / "c.csv").write_text(
        f"id,name,locked,reason\nC1,{name},{locked},{reason}\n"
    )


def run(path: Path, engine: Engine, flow: str) -> Any:
    result = FlowRunner(load_config(path), engine).run(flow)
    assert result.status == "succeeded", result.error
    return result


def record(engine: Engine) -> tuple[int, dict[str, Any]]:
    with engine.connect() as conn:
        row = conn.execute(select(records.c.version, records.c.payload)).one()
    return row.version, orjson.loads(row.payload)


def queued(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(deliveries.c.version).order_by(deliveries.c.id)).scalars())


def erp_shop_erp(path: Path, engine: Engine) -> None:
    """The ERP creates the customer, the shop locks it, the ERP changes its e-mail."""
    erp(path, "Anna GmbH", "a@erp.example")
    run(path, engine, "customers-from-erp")
    shop(path, "Anna GmbH", "payment overdue")
    run(path, engine, "lock-from-shop")
    erp(path, "Anna GmbH", "anna@erp.example")
    run(path, engine, "customers-from-erp")


def test_an_in_flow_changes_only_the_fields_it_maps(world: Any) -> None:
    path, engine = world()
    erp(path, "Anna GmbH", "a@erp.example")
    run(path, engine, "customers-from-erp")
    shop(path, "Anna GmbH", "payment overdue")
    assert run(path, engine, "lock-from-shop").updated == 1

    # The ERP knows nothing of the lock: its next read changes the e-mail and keeps the lock.
    erp(path, "Anna GmbH", "anna@erp.example")
    result = run(path, engine, "customers-from-erp")
    assert (result.updated, result.unchanged) == (1, 0)
    version, payload = record(engine)
    assert payload == {
        "code": "C1", "name": "Anna GmbH", "email": "anna@erp.example",
        "locked": True, "lock_reason": "payment overdue",
    }  # fmt: skip
    with engine.connect() as conn:
        changed = conn.execute(
            select(audit.c.changed_fields).where(audit.c.version == version)
        ).scalar_one()
    assert orjson.loads(changed) == ["email"]

    # The same read again: the merged record equals the stored one, nothing is written or sent.
    before = queued(engine)
    erp(path, "Anna GmbH", "anna@erp.example")
    result = run(path, engine, "customers-from-erp")
    assert (result.updated, result.unchanged) == (0, 1)
    assert record(engine)[0] == version and queued(engine) == before


def test_replace_true_takes_the_whole_record(world: Any) -> None:
    path, engine = world(replace=True)
    erp_shop_erp(path, engine)
    payload = record(engine)[1]
    assert "lock_reason" not in payload and payload["locked"] is False


OWNERS = """owners:
  customer:
    erp: [name, email]
    shop: [locked, lock_reason]
"""


def test_a_change_from_a_non_owner_is_not_applied(world: Any) -> None:
    path, engine = world(owners=OWNERS)
    erp(path, "Anna GmbH", "a@erp.example")
    run(path, engine, "customers-from-erp")
    shop(path, "Anna AG (typo in the shop)", "payment overdue")
    result = run(path, engine, "lock-from-shop")
    assert result.updated == 1
    assert any("owns" in w for w in result.warnings), result.warnings
    payload = record(engine)[1]
    assert (payload["name"], payload["lock_reason"]) == ("Anna GmbH", "payment overdue")

    # Only the foreign field differs: nothing to write at all.
    version = record(engine)[0]
    shop(path, "Anna AG (typo in the shop)", "payment overdue")
    assert run(path, engine, "lock-from-shop").unchanged == 1
    assert record(engine)[0] == version

    # The owner changes it.
    erp(path, "Anna SE", "a@erp.example")
    assert run(path, engine, "customers-from-erp").updated == 1
    assert record(engine)[1]["name"] == "Anna SE"


def test_a_non_owner_change_is_a_conflict_under_a_manual_policy(world: Any) -> None:
    path, engine = world(owners=OWNERS, conflict="manual")
    erp(path, "Anna GmbH", "a@erp.example")
    run(path, engine, "customers-from-erp")
    worker = Worker(load_config(path), engine)  # the shop has the hub's record: no two-way case
    assert worker.run_once().delivered == 1
    worker.close()
    shop(path, "Anna AG", "payment overdue")
    result = run(path, engine, "lock-from-shop")
    assert result.conflicts == 1
    assert record(engine)[1]["name"] == "Anna GmbH"
    shop(path, "Anna AG", "payment overdue")
    run(path, engine, "lock-from-shop")  # the same change again: still one open conflict
    with engine.connect() as conn:
        rows = conn.execute(select(conflicts.c.id, conflicts.c.status)).all()
    assert [r.status for r in rows] == ["open"]
    FlowRunner(load_config(path), engine).resolve_conflict(rows[0].id, "source")
    assert record(engine)[1] == {
        "code": "C1", "name": "Anna AG", "email": "a@erp.example",
        "locked": True, "lock_reason": "payment overdue",
    }  # fmt: skip


def test_owners_are_checked(world: Any) -> None:
    bad = "owners:\n  customer:\n    erp: [name, nickname]\n    shop: [name]\n    crm: [email]\n"
    path, _ = world(owners=bad)
    code, out = cli("check", str(path))
    assert code != 0
    assert "has no field 'nickname'" in out
    assert "'name' is owned by channel 'erp' already" in out
    assert "unknown channel 'crm'" in out


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_the_lineage_of_each_field_in_the_api_and_the_cli(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    path, engine = world()
    erp_shop_erp(path, engine)

    config = load_config(path)
    key = create_client(engine, "ops", {"read"})[1]
    api = ApiClient(create_app(build_hub(config, engine)), "127.0.0.1", {"X-API-Key": key})
    answer = api.get("/api/v1/records/customer/C1")
    assert answer.status_code == 200, answer.text
    fields = {
        name: (o["version"], o["flow"], o["channel"]) for name, o in answer.json()["fields"].items()
    }
    assert fields == {
        "code": (1, "customers-from-erp", "erp"),
        "name": (1, "customers-from-erp", "erp"),
        "email": (3, "customers-from-erp", "erp"),
        "locked": (2, "lock-from-shop", "shop"),
        "lock_reason": (2, "lock-from-shop", "shop"),
    }

    code, out = cli("records", "customer", "--key", "C1", "--config", str(path))
    assert code == 0, out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 4}
    assert "lock-from-shop" in lines["lock_reason"] and "customers-from-erp" in lines["email"]
