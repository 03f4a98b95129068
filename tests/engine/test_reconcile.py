"""Reconciliation on both hub stores (SQLite, PostgreSQL): the sort-merge meets every key's
partner whatever a database collation would order differently from code points ("a-b" and
"ab c", upper and lower case, accents); channel rows that cannot be mapped or repeat a key are
counted apart; ``redeliver`` queues what an OUT flow's target lacks or holds stale, and the
worker's deliveries make both sides agree."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.reconcile.compare import KeyOrderError, Spill, Tally
from erpbridge.engine.reconcile.run import Reconciler

KEYS = ["a-b", "ab c", "ab", "a_b", "B", "b", "Z", "é", "e", "10", "9", "a b", "ä"]

CONFIG = """
hub: {{database_url: "{hub}"}}
entities:
  account:
    key: [code]
    fields: {{code: {{type: string, required: true}}, name: string}}
channels:
  erp: {{system: sql, options: {{url: "sqlite:///erp.db"}}}}
flows:
  - name: accounts-in
    channel: erp
    entity: account
    direction: in
    source: {{table: accounts}}
    reconcile: {{page_size: 3}}
"""


def test_keys_meet_their_partner_in_any_collation(hub_url: str, tmp_path: Path) -> None:
    erp = sqlite3.connect(tmp_path / "erp.db")
    erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT)")
    erp.executemany("INSERT INTO accounts VALUES (?, ?)", [(k, f"n {k}") for k in KEYS])
    erp.commit()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(hub=hub_url), encoding="utf-8")
    config = load_config(path)
    engine = open_store(hub_url)
    try:
        assert FlowRunner(config, engine).run("accounts-in").created == len(KEYS)
        erp.execute("DELETE FROM accounts WHERE code = 'ab c'")
        erp.execute("UPDATE accounts SET name = 'changed' WHERE code = 'a-b'")
        erp.execute("INSERT INTO accounts VALUES ('ab d', 'new')")
        erp.commit()
        comparison = Reconciler(config, engine).reconcile(config.reconcile["accounts-in"])
        comparison.close()
    finally:
        engine.dispose()
        erp.close()
    t = comparison.report.tally
    assert (t.hub, t.channel, t.matched) == (len(KEYS), len(KEYS), len(KEYS) - 2)
    assert [(d.key, d.kind, d.hub, d.channel) for d in t.details] == [
        ("a-b", "differs", "n a-b", "changed"),
        ("ab c", "missing_in_channel", None, None),
        ("ab d", "missing_in_hub", None, None),
    ]


def test_hub_rows_out_of_order_are_refused() -> None:
    spill = Spill(("name",))
    try:
        with pytest.raises(KeyOrderError, match="'a' after 'b'"):
            spill.compare(iter([("b", b"[1]"), ("a", b"[1]")]), Tally(), 10)
    finally:
        spill.close()


def test_unmappable_and_repeated_channel_rows_are_counted_not_compared(tmp_path: Path) -> None:
    erp = sqlite3.connect(tmp_path / "erp.db")
    erp.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, code TEXT, name TEXT)")
    erp.executemany(
        "INSERT INTO accounts VALUES (?, ?, ?)",
        [(1, "A", "one"), (2, None, "no key"), (3, "A", "again"), (4, "B", "two")],
    )
    erp.commit()
    erp.close()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(hub=f"sqlite:///{tmp_path / 'hub.db'}"), encoding="utf-8")
    config = load_config(path)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        comparison = Reconciler(config, engine).reconcile(config.reconcile["accounts-in"])
        comparison.close()
    finally:
        engine.dispose()
    report = comparison.report
    assert report.rejected == 1 and report.tally.duplicates == 1
    assert report.rejects == ["accounts#row=2: code: required field is missing"]
    assert (report.tally.channel, report.tally.missing_in_hub) == (2, 2)


OUT_CONFIG = """
hub: {{database_url: "{hub}"}}
entities:
  account:
    key: [code]
    fields: {{code: {{type: string, required: true}}, name: string}}
channels:
  erp: {{system: sql, options: {{url: "sqlite:///erp.db"}}}}
  out: {{system: sql, transport: sqlwrite, options: {{url: "sqlite:///erp.db"}}}}
flows:
  - {{name: accounts-in, channel: erp, entity: account, direction: in,
     source: {{table: accounts}}}}
  - {{name: accounts-out, channel: out, entity: account, direction: out,
     target: {{table: copies, key: [code]}},
     reconcile: {{channel: erp, source: {{table: copies}}}}}}
"""


def test_redeliver_queues_what_the_target_lacks_on_either_store(
    hub_url: str, tmp_path: Path
) -> None:
    from erpbridge.engine.reconcile.repair import repair
    from erpbridge.engine.worker import Worker

    erp = sqlite3.connect(tmp_path / "erp.db")
    erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT)")
    erp.execute("CREATE TABLE copies (code TEXT PRIMARY KEY, name TEXT)")
    erp.executemany("INSERT INTO accounts VALUES (?, ?)", [(k, f"n {k}") for k in KEYS])
    erp.commit()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(OUT_CONFIG.format(hub=hub_url), encoding="utf-8")
    config = load_config(path)
    engine = open_store(hub_url)
    worker = Worker(config, engine)
    try:
        FlowRunner(config, engine).run("accounts-in")
        assert worker.run_once().delivered == len(KEYS)
        erp.execute("DELETE FROM copies WHERE code IN ('ab c', 'é')")
        erp.execute("UPDATE copies SET name = 'edited' WHERE code = 'B'")
        erp.commit()
        reconciler = Reconciler(config, engine)
        plan = config.reconcile["accounts-out"]
        comparison = reconciler.reconcile(plan)
        try:
            assert repair(config, engine, comparison, "redeliver") == 3
        finally:
            comparison.close()
        assert worker.run_once().delivered == 3
        again = reconciler.reconcile(plan)
        again.close()
    finally:
        worker.close()
        engine.dispose()
        erp.close()
    assert again.report.tally.matched == len(KEYS)
    assert again.report.tally.differences == 0


def test_a_graceful_stop_ends_a_reconciliation_between_pages(tmp_path: Path) -> None:
    import threading

    from erpbridge.engine.reconcile.run import ReconcileFailed

    erp = sqlite3.connect(tmp_path / "erp.db")
    erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT)")
    erp.executemany("INSERT INTO accounts VALUES (?, ?)", [(k, k) for k in KEYS])
    erp.commit()
    erp.close()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(hub=f"sqlite:///{tmp_path / 'hub.db'}"), encoding="utf-8")
    config = load_config(path)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    stopping = threading.Event()
    stopping.set()
    try:
        with pytest.raises(ReconcileFailed, match="stopped by a graceful shutdown after 0"):
            Reconciler(config, engine, stopping).reconcile(config.reconcile["accounts-in"])
    finally:
        engine.dispose()
