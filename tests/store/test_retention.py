"""Retention: what a prune deletes, what it always keeps, and that the hub goes on afterwards.

A real IN flow (SQLite source) writes three versions of each product; a real worker delivers
them to a SQL target; then the history is made 100 days old and pruned with the defaults plus
``audit: 30d``. What stays is exactly what the hub still works with.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, update

from erpbridge import FlowRunner, load_config
from erpbridge.engine.retention import RetentionJob
from erpbridge.engine.worker import Worker
from erpbridge.store import open_store
from erpbridge.store.retention import RULES, prune
from erpbridge.store.runs import now
from erpbridge.store.tables import (
    admin_audit,
    alert_history,
    audit,
    deliveries,
    delivery_attempts,
    idempotency_keys,
    reconciliations,
    rejected,
    runs,
    schedule_fires,
)

CONFIG = """
hub:
  database_url: "{url}"
  retention: {{audit: 30d}}
channels:
  plm: {{system: sql, options: {{url: "sqlite:///plm.db"}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///erp.db"}}}}
flows:
  - name: products-in
    channel: plm
    entity: product
    direction: in
    source: {{table: products}}
    key: sku
    cursor: {{column: updated_at, tiebreaker: id}}
    mapping: {{sku: sku, name: name}}
  - name: products-out
    channel: erp
    entity: product
    direction: out
    target: {{table: staging, key: [sku]}}
    mapping: {{sku: sku, name: name}}
"""

KEYS = 20


def write_source(path: Path, revision: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, sku TEXT UNIQUE,"
            " name TEXT, updated_at TEXT)"
        )
        db.executemany(
            "INSERT INTO products (id, sku, name, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id)"
            " DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
            [(n, f"P-{n:03d}", f"rev {revision}", f"2026-0{revision}-01") for n in range(KEYS)],
        )
    db.close()


def hub(tmp_path: Path, hub_url: str, revisions: int) -> Engine:
    """A hub whose products went through ``revisions`` versions, each delivered."""
    (tmp_path / "erpbridge.yaml").write_text(CONFIG.format(url=hub_url))
    with sqlite3.connect(tmp_path / "erp.db") as db:
        db.execute("CREATE TABLE staging (sku TEXT PRIMARY KEY, name TEXT)")
    db.close()
    config = load_config(tmp_path / "erpbridge.yaml")
    engine = open_store(hub_url)
    worker = Worker(config, engine)
    for revision in range(1, revisions + 1):
        write_source(tmp_path / "plm.db", revision)
        assert FlowRunner(config, engine).run("products-in").status == "succeeded"
        while worker.run_once().claimed:
            pass
    return engine


def age_everything(engine: Engine, days: int) -> None:
    then = now() - timedelta(days=days)
    with engine.begin() as conn:
        conn.execute(update(deliveries).values(updated_at=then, created_at=then))
        conn.execute(update(delivery_attempts).values(started_at=then, finished_at=then))
        conn.execute(update(runs).values(started_at=then))
        conn.execute(update(audit).values(at=then))


def counts(engine: Engine) -> dict[str, int]:
    tables = {
        "deliveries": deliveries,
        "attempts": delivery_attempts,
        "runs": runs,
        "rejections": rejected,
        "audit": audit,
        "idempotency_keys": idempotency_keys,
        "schedule_fires": schedule_fires,
        "admin_audit": admin_audit,
        "alert_history": alert_history,
        "reconciliations": reconciliations,
    }
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in tables.items()
        }


def test_prune_keeps_what_the_hub_works_with(tmp_path: Path, hub_url: str) -> None:
    engine = hub(tmp_path, hub_url, revisions=3)
    config = load_config(tmp_path / "erpbridge.yaml")
    policy = config.model.hub.retention
    age_everything(engine, days=100)
    then = now() - timedelta(days=100)
    with engine.begin() as conn:
        # one v1 delivery dead (an open problem), one v2 cancelled; old and new API answers,
        # a resolved and an open rejection, old fire times and admin actions
        first = conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars().all()
        conn.execute(update(deliveries).where(deliveries.c.id == first[0]).values(state="dead"))
        conn.execute(
            update(deliveries).where(deliveries.c.id == first[KEYS]).values(state="cancelled")
        )
        conn.execute(
            insert(idempotency_keys),
            [
                {"scope": "c", "key": key, "request_hash": "h", "status_code": 200,
                 "response": "{}", "created_at": at}
                for key, at in (("old", then), ("new", now()))
            ],
        )  # fmt: skip
        conn.execute(
            insert(rejected),
            [
                {"flow": "products-in", "channel": "plm", "entity": "product", "position": "1",
                 "reason": "r", "status": status, "created_at": then, "resolved_at": resolved}
                for status, resolved in (("replayed", then), ("open", None))
            ],
        )  # fmt: skip
        conn.execute(
            insert(schedule_fires),
            {"flow": "products-in", "fire_time": then, "scheduler": "s", "claimed_at": then},
        )
        conn.execute(
            insert(admin_audit),
            {"at": then, "actor": "ops", "action": "flow.pause", "outcome": "ok"},
        )
        conn.execute(
            insert(alert_history),
            [
                {"rule": "dead", "subject": "erp", "kind": kind, "at": then, "message": kind}
                for kind in ("fired", "resolved")
            ],
        )
        # two old reconciliations of a flow: the newer stays (the alert rule reads it)
        conn.execute(
            insert(reconciliations),
            [
                {"flow": "products-in", "channel": "plm", "entity": "product",
                 "trigger": "schedule", "status": "succeeded", "started_at": then,
                 "hub_count": 0, "channel_count": 0, "missing_in_channel": 0,
                 "missing_in_hub": 0, "differing": n, "report": "{}", "repaired": 0}
                for n in (1, 2)
            ],
        )  # fmt: skip
    before = counts(engine)
    assert before["deliveries"] == 3 * KEYS and before["audit"] == 3 * KEYS

    dry = prune(engine, policy.ages(), dry_run=True)
    assert counts(engine) == before, "a dry run deletes nothing"
    report = prune(engine, policy.ages(), batch_size=policy.batch_size)
    pruned = {item.rule: item.rows for item in report}
    assert {item.rule: item.rows for item in dry} == pruned
    assert [item.rule for item in report] == [*RULES, "expired"]
    after = counts(engine)

    with engine.connect() as conn:
        kept = conn.execute(select(deliveries.c.key, deliveries.c.version, deliveries.c.state))
        by_state = Counter((version, state) for _, version, state in kept)
        attempts = conn.execute(
            select(delivery_attempts.c.delivery_id, func.count()).group_by(
                delivery_attempts.c.delivery_id
            )
        ).all()
        versions = conn.execute(select(audit.c.version)).scalars().all()
        flows = conn.execute(select(runs.c.flow)).scalars().all()
        open_rejections = conn.execute(select(rejected.c.status)).scalars().all()
        answers = conn.execute(select(idempotency_keys.c.key)).scalars().all()
    # each key's newest delivered version, and the dead one; the cancelled and superseded gone
    assert by_state == Counter({(3, "delivered"): KEYS, (1, "dead"): 1})
    assert after["deliveries"] == KEYS + 1 and pruned["deliveries"] == 2 * KEYS - 1
    assert all(count == 1 for _, count in attempts)  # no attempt of a pruned delivery is left
    assert versions == [3] * KEYS  # each record's current version
    assert flows == ["products-in"], (pruned, dry)  # the flow's latest run
    assert open_rejections == ["open"] and answers == ["new"]
    assert after["schedule_fires"] == 0 and after["admin_audit"] == 1  # admin audit: off
    with engine.connect() as conn:  # an alert's latest entry stays, however old
        assert conn.execute(select(alert_history.c.kind)).scalars().all() == ["resolved"]
        assert conn.execute(select(reconciliations.c.differing)).scalars().all() == [2]

    # the hub goes on: a fourth revision is read and delivered over the kept history
    worker = Worker(config, engine)
    write_source(tmp_path / "plm.db", 4)
    assert FlowRunner(config, engine).run("products-in").updated == KEYS
    while worker.run_once().claimed:
        pass
    with sqlite3.connect(tmp_path / "erp.db") as db:
        names = Counter(name for (name,) in db.execute("SELECT name FROM staging"))
    db.close()
    assert names == Counter({"rev 4": KEYS})
    engine.dispose()


def test_one_process_prunes_each_fire(tmp_path: Path, hub_url: str) -> None:
    engine = hub(tmp_path, hub_url, revisions=2)
    policy = load_config(tmp_path / "erpbridge.yaml").model.hub.retention.model_copy(
        update={"every": "1h", "deliveries": "1s", "runs": "1s", "attempts": "1s"}
    )
    age_everything(engine, days=1)
    first, second = (RetentionJob(engine, policy, name) for name in ("a", "b"))
    start = now().replace(minute=30)
    assert first.tick(start) is None and second.tick(start) is None  # wait for a fire time
    fire = start + timedelta(hours=1)
    outcomes = [first.tick(fire), second.tick(fire)]
    assert outcomes[1] is None and (outcomes[0] or 0) >= KEYS  # v1 deliveries, old runs
    assert first.tick(fire + timedelta(minutes=1)) is None  # no second prune before the next fire
    engine.dispose()


def test_prune_command_and_bad_retention_settings(tmp_path: Path) -> None:
    engine = hub(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}", revisions=2)
    age_everything(engine, days=100)
    engine.dispose()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "erpbridge", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def rows(output: str, rule: str) -> str:
        line = next(line for line in output.splitlines() if f" {rule} " in line)
        return [cell.strip() for cell in line.split("│") if cell.strip()][-1]

    dry = cli("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout
    assert rows(dry.stdout, "deliveries") == str(KEYS)  # the v1 of each key
    done = cli("prune")
    assert done.returncode == 0, done.stderr
    assert rows(done.stdout, "deliveries") == str(KEYS)
    assert rows(cli("prune", "--dry-run").stdout, "deliveries") == "0"

    config = (tmp_path / "erpbridge.yaml").read_text()
    bad = config.replace("retention: {audit: 30d}", "retention: {audit: 30 days, keep: 1}")
    (tmp_path / "erpbridge.yaml").write_text(bad)
    checked = cli("check")
    assert checked.returncode == 2
    assert "hub.retention.audit" in checked.stderr + checked.stdout
    assert "hub.retention.keep" in checked.stderr + checked.stdout
    assert "Traceback" not in checked.stderr
