"""The pieces behind a store outage, in process: the bounded retry, the failure log of a loop,
and a run that could not be closed during an outage being marked failed once the store is back.
The real faults (PostgreSQL stopped, a full disk) are in tests/integration/test_store_faults.py.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.test_kill import CONFIG, make_source
from erpbridge.config.loader import load_config
from erpbridge.engine import runner as runner_module
from erpbridge.engine.failures import FailureLog
from erpbridge.engine.runner import FlowRunner
from erpbridge.errors import StoreUnavailable
from erpbridge.store import open_store
from erpbridge.store.outage import StoreRetry
from erpbridge.store.runs import start_run
from erpbridge.store.tables import runs

URL = "postgresql+psycopg://erp:secret@db.example:5432/hub"


def outage(words: str = "connection refused") -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(words))


def test_retry_waits_out_an_outage_then_gives_up_naming_the_store() -> None:
    retry = StoreRetry(create_engine(URL), budget_s=0.6, first_s=0.05, max_s=0.1)
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise outage()
        return "stored"

    assert retry.call(flaky, "test") == "stored" and len(calls) == 3

    def down() -> None:
        raise outage("connection failed: Connection refused")

    with pytest.raises(StoreUnavailable) as caught:
        retry.call(down, "test")
    assert str(caught.value).startswith(
        "the hub store postgresql+psycopg://erp:***@db.example:5432/hub is unavailable: "
        "connection failed: Connection refused (gave up after 1 s, "
    )
    assert "secret" not in str(caught.value)

    def clash() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):  # not an outage: no retry
        retry.call(clash, "test")


def test_a_failure_repeated_on_every_pass_is_logged_once_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = FailureLog(logging.getLogger("test.loop"), "worker w1")
    with caplog.at_level(logging.DEBUG, logger="test.loop"):
        for words in ["shutting down"] + ["connection refused"] * 48 + ["starting up"]:
            failures.failed(outage(words), "postgresql+psycopg://erp:***@db/hub")
        failures.recovered()
        failures.recovered()  # nothing more to say
        for _ in range(3):
            failures.failed(ValueError("a bug"))
        failures.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "worker w1: the hub store postgresql+psycopg://erp:***@db/hub is unavailable: "
        "shutting down; retrying (repeats are counted)"
    )
    assert lines[1] == "worker w1: working again after 50 failed pass(es) over 0 s"
    assert lines[2:] == [
        "worker w1 failed: ValueError: a bug (repeats are counted)",
        "worker w1: working again after 3 failed pass(es) over 0 s",
    ]
    assert caplog.records[2].exc_info is not None  # the traceback of a bug, once
    assert len(caplog.records) == 4


def test_a_run_ended_by_an_outage_is_marked_failed_once_the_store_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(tmp_path / "erp.db")
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=f"sqlite:///{tmp_path / 'hub.db'}"), encoding="utf-8")
    config = load_config(path)
    engine = open_store(config.database_url())
    runner = FlowRunner(config, engine)
    run_id = start_run(
        engine,
        flow="orders-in",
        channel="erp",
        entity="order",
        mode="full",
        dry_run=False,
        cursor_before=None,
        lease=runner.lease,
        lock=True,
    )
    real = runner_module.finish_run

    def store_down(*_args: object, **_kwargs: object) -> None:
        raise outage()

    monkeypatch.setattr(runner_module, "finish_run", store_down)
    assert runner._close(run_id, "flow 'orders-in': the hub store … is unavailable", []) is False
    assert runner.close_pending() == []  # still down
    monkeypatch.setattr(runner_module, "finish_run", real)
    assert runner.close_pending() == [run_id]
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).one()
    assert (row.status, row.error) == ("failed", "flow 'orders-in': the hub store … is unavailable")
    engine.dispose()
