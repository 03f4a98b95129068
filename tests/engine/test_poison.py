"""A poison record: its write hangs every worker that tries it, until the worker is killed.

The ERP's staging table (PostgreSQL) has a trigger that waits forever for one product (as a
trigger calling out to a locked resource does). ``erpbridge worker`` processes hang on it and
are killed with ``kill -9``, as an operator or a watchdog does. Each killed attempt counts: the
poison delivery reaches ``max_attempts`` and goes ``dead`` with the reason, while the records of
the batch it hung with are taken over one by one and delivered, each attempted as often as it
really was. The target database ends orphaned backends the way a DBA configures it
(``client_connection_check_interval``), so a killed worker's transaction does not hold locks.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from erpbridge import FlowRunner, load_config
from erpbridge.store import open_store
from erpbridge.store.tables import deliveries, delivery_attempts
from integration.servers import require_server

POISON = "P-10"
MAX_ATTEMPTS = 3
LEASE_S = 2.0
RECORDS = 20

CONFIG = """
hub: {{database_url: "{url}"}}
channels:
  plm: {{system: sql, options: {{url: "sqlite:///plm.db"}}}}
  erp: {{system: sql, transport: sqlwrite, options: {{url: "{erp}"}}}}
flows:
  - {{name: products-in, channel: plm, entity: product, direction: in, key: sku,
     source: {{table: products}}, mapping: {{sku: sku, name: name}}}}
  - name: products-erp
    channel: erp
    entity: product
    direction: out
    target: {{table: staging, key: [sku]}}
    retry: {{max_attempts: {attempts}, backoff_s: 0.05, min_delay_s: 0}}
    mapping: {{sku: sku, name: name}}
"""

TARGET = [
    "CREATE TABLE staging (sku text PRIMARY KEY, name text NOT NULL)",
    "CREATE FUNCTION wait_for_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
    f" BEGIN IF NEW.sku = '{POISON}' THEN PERFORM pg_sleep(3600); END IF; RETURN NEW; END $$",
    "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON staging"
    " FOR EACH ROW EXECUTE FUNCTION wait_for_poison()",
]


@pytest.fixture
def erp_url() -> Iterator[str]:
    """The ERP's own PostgreSQL database, with the trigger; dropped afterwards."""
    base = require_server("ERPBRIDGE_TEST_PG_URL", "PostgreSQL")
    name = f"erp_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        # A backend whose client is gone stops within half a second and rolls back.
        conn.exec_driver_sql(
            f"ALTER DATABASE \"{name}\" SET client_connection_check_interval = '500ms'"
        )
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    erp = sa.create_engine(url)
    with erp.begin() as conn:
        for statement in TARGET:
            conn.exec_driver_sql(statement)
    erp.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def test_a_record_that_hangs_every_worker_goes_dead_and_the_rest_are_delivered(
    tmp_path: Path, hub_url: str, erp_url: str
) -> None:
    with sqlite3.connect(tmp_path / "plm.db") as db:
        db.execute("CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT)")
        db.executemany(
            "INSERT INTO products VALUES (?, ?)",
            [(f"P-{i:02d}" if i != 10 else POISON, f"product {i}") for i in range(1, RECORDS + 1)],
        )
    db.close()
    config = tmp_path / "erpbridge.yaml"
    text = CONFIG.format(url=hub_url, erp=erp_url, attempts=MAX_ATTEMPTS)
    config.write_text(text, encoding="utf-8")
    hub = open_store(hub_url)
    erp = sa.create_engine(erp_url)
    log = tmp_path / "workers.log"

    def sleeping() -> set[int]:
        """Backends of the ERP database stuck in the poison's trigger."""
        with erp.connect() as conn:
            query = (
                "SELECT pid FROM pg_stat_activity"
                " WHERE wait_event = 'PgSleep' AND datname = current_database()"
            )
            return set(conn.exec_driver_sql(query).scalars())

    def poison() -> sa.Row[tuple[str, int, str | None]]:
        with hub.connect() as conn:
            return conn.execute(
                sa.select(deliveries.c.state, deliveries.c.attempts, deliveries.c.last_error).where(
                    deliveries.c.key == POISON
                )
            ).one()

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as stderr:
            return subprocess.Popen(
                [sys.executable, "-m", "erpbridge", "worker", "--interval", "0.1",
                 "--lease", str(LEASE_S), "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
            )  # fmt: skip

    kills = 0
    worker: subprocess.Popen[bytes] | None = None
    try:
        result = FlowRunner(load_config(config), hub).run("products-in")
        assert (result.status, result.created) == ("succeeded", RECORDS)
        for _ in range(MAX_ATTEMPTS + 1):
            worker = start()
            wait_for(lambda: bool(sleeping()) or poison().state == "dead", 60, "a hang or dead")
            if poison().state == "dead":
                break
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            wait_for(lambda: not sleeping(), 10, "the killed worker's backend to end")
        assert worker is not None
        wait_for(lambda: staged_count(erp) == RECORDS - 1, 60, "the other records delivered")
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()

    try:
        state, attempts, error = poison()
        assert (kills, state, attempts) == (MAX_ATTEMPTS, "dead", MAX_ATTEMPTS), log.read_text()
        assert error is not None and error.startswith(
            f"the worker died while delivering it ({MAX_ATTEMPTS} of {MAX_ATTEMPTS} attempts, "
            "the last by "
        )
        assert error.endswith(
            "whose lease expired): the record may crash or hang the writer; fix the cause, "
            "then retry it"
        )
        with hub.connect() as conn:
            others = conn.execute(
                sa.select(deliveries.c.state, deliveries.c.attempts, sa.func.count())
                .where(deliveries.c.key != POISON)
                .group_by(deliveries.c.state, deliveries.c.attempts)
                .order_by(deliveries.c.attempts)
            ).all()
            logged = conn.execute(
                sa.select(delivery_attempts.c.attempt, delivery_attempts.c.outcome)
                .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
                .where(deliveries.c.key == POISON)
            ).all()
        # The batch's first attempt hung with the poison: each other record was attempted
        # twice (the hung batch, then alone) and delivered; none was dragged to dead.
        assert [tuple(r) for r in others] == [("delivered", 2, RECORDS - 1)]
        assert [tuple(r) for r in logged] == [(MAX_ATTEMPTS, "dead")]
        with erp.connect() as conn:
            keys = set(conn.exec_driver_sql("SELECT sku FROM staging").scalars())
        assert POISON not in keys and len(keys) == RECORDS - 1
    finally:
        hub.dispose()
        erp.dispose()


def staged_count(erp: sa.Engine) -> int:
    with erp.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM staging").scalar_one())
