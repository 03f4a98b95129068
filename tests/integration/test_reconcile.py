"""``erpbridge reconcile`` against real PostgreSQL and MariaDB servers, and a REST channel.

The MES database (:mod:`integration.sql_sites`) feeds an IN flow; an OUT flow writes the ERP's
staging table through a writer login, and reconciles it back through a SELECT-only channel on
the same database. The owner then changes both tables with plain SQL the way people do behind
an integration's back; ``erpbridge reconcile`` (the served command, a subprocess) must name
every difference with both values and change nothing. A REST channel that goes down between
two pages ends the reconciliation with the place and the cause, nothing changed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import cursors, deliveries, records
from httpserve import QuietHandler, serve_handler
from integration.sql_sites import Site, open_site

CONFIG = """
hub: {{database_url: "sqlite:///hub.db"}}
entities:
  plant_order:
    key: [order_code]
    fields:
      order_code: {{type: string, required: true}}
      product_code: string
      quantity: decimal
channels:
  mes:
    system: sql
    options: {{url: "{reader}", {schema} connect_timeout: 5}}
  erp:
    system: sql
    transport: sqlwrite
    options: {{url: "{writer}", {schema} connect_timeout: 5}}
flows:
  - name: orders-in
    channel: mes
    entity: plant_order
    direction: in
    source: {{table: production_orders}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 60}}
    mapping: {{order_code: order_code, product_code: product_code, quantity: quantity}}
    reconcile: {{amounts: [quantity], page_size: 2}}
  - name: orders-to-erp
    channel: erp
    entity: plant_order
    direction: out
    target: {{table: erp_orders, key: [order_no]}}
    mapping: {{order_no: order_code, article: product_code, qty: quantity}}
    reconcile:
      channel: mes
      source: {{table: erp_orders}}
      mapping: {{order_code: order_no, product_code: article, quantity: qty}}
      amounts: [quantity]
      page_size: 2
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """The MES/ERP database on the real server."""
    yield from open_site(request.param)


@pytest.fixture
def config_path(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MES_DB_PASSWORD", site.passwords["reader"])
    monkeypatch.setenv("ERP_DB_PASSWORD", site.passwords["writer"])
    path = tmp_path / "erpbridge.yaml"
    path.write_text(
        CONFIG.format(
            reader=site.config_url("reader", "MES_DB_PASSWORD"),
            writer=site.config_url("writer", "ERP_DB_PASSWORD"),
            schema=f"schema: {site.schema}," if site.schema else "",
        ),
        encoding="utf-8",
    )
    return path


def _order(row_id: int) -> dict[str, Any]:
    return {
        "id": row_id,
        "order_code": f"PO-{row_id}",
        "product_code": f"P-{row_id % 3}",
        "machine_code": "M1",
        "quantity": Decimal(f"{row_id}.125"),
        "released": False,
        "shift_start": None,
        "start": None,
        "end": None,
        "updated_at": datetime(2024, 3, 1, 12, row_id, tzinfo=UTC),
    }


def _reconcile(config_path: Path, *args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", "reconcile", *args, "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config_path.parent,
    )
    return done.returncode, done.stdout, done.stderr


def _hub_state(config_path: Path) -> tuple[list[Any], list[Any], list[Any]]:
    engine = open_store(f"sqlite:///{config_path.parent / 'hub.db'}")
    try:
        with engine.connect() as conn:
            return (
                list(conn.execute(sa.select(records).order_by(records.c.id))),
                list(conn.execute(sa.select(deliveries).order_by(deliveries.c.id))),
                list(conn.execute(sa.select(cursors))),
            )
    finally:
        engine.dispose()


def _deliver(config_path: Path) -> None:
    config = load_config(config_path)
    engine = open_store(f"sqlite:///{config_path.parent / 'hub.db'}")
    worker = Worker(config, engine)
    try:
        stats = worker.run_once()
        assert stats.dead == 0 and stats.retried == 0, stats
    finally:
        worker.close()
        engine.dispose()


def _sync_and_deliver(config_path: Path) -> None:
    config = load_config(config_path)
    engine = open_store(f"sqlite:///{config_path.parent / 'hub.db'}")
    try:
        assert FlowRunner(config, engine).run("orders-in").status == "succeeded"
        worker = Worker(config, engine)
        try:
            assert worker.run_once().delivered == 5
        finally:
            worker.close()
    finally:
        engine.dispose()


def test_reconcile_finds_every_difference_and_changes_nothing(
    site: Site, config_path: Path
) -> None:
    site.add("production_orders", [_order(i) for i in range(1, 6)])
    _sync_and_deliver(config_path)

    code, out, err = _reconcile(config_path, "plant_order", "--format", "json")
    assert code == 0, err
    reports = [orjson.loads(line) for line in out.splitlines()]
    assert [r["flow"] for r in reports] == ["orders-in", "orders-to-erp"]
    for report in reports:
        assert report["counts"] == {
            "hub": 5, "channel": 5, "matched": 5, "missing_in_channel": 0,
            "missing_in_hub": 0, "differing": 0, "duplicates": 0, "rejected": 0,
        }  # fmt: skip
        assert report["sums"]["quantity"]["hub"] == report["sums"]["quantity"]["channel"]
        assert Decimal(report["sums"]["quantity"]["hub"]) == Decimal("15.625")

    # Behind the integration's back: the MES changes a quantity and gains an order; someone
    # deletes an ERP row and edits another's article.
    site.change("production_orders", 2, quantity=Decimal("7.5"))
    site.add("production_orders", [_order(6)])
    erp = site.qualified("erp_orders")
    with site.owner.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {erp} WHERE order_no = 'PO-3'")
        conn.exec_driver_sql(f"UPDATE {erp} SET article = 'X-9' WHERE order_no = 'PO-4'")
    before = _hub_state(config_path)

    code, out, err = _reconcile(config_path, "orders-to-erp", "--format", "json")
    assert code == 1, err
    (report,) = [orjson.loads(line) for line in out.splitlines()]
    assert report["counts"]["hub"] == 5 and report["counts"]["channel"] == 4
    assert report["counts"]["missing_in_channel"] == 1
    assert report["counts"]["differing"] == 1
    assert sorted((d["key"], d["kind"], d["field"], d["hub"], d["channel"])
                  for d in report["differences"]) == [
        ("PO-3", "missing_in_channel", None, None, None),
        ("PO-4", "differs", "product_code", "P-1", "X-9"),
    ]  # fmt: skip
    assert report["sums"]["quantity"] == {
        "hub": "15.625", "channel": "12.500", "difference": "3.125", "unreadable": 0,
    }  # fmt: skip

    code, out, err = _reconcile(config_path, "orders-in", "--format", "csv")
    assert code == 1, err
    rows = out.splitlines()
    assert rows[0] == "flow,key,kind,field,hub,channel"
    assert sorted(rows[1:]) == [
        "orders-in,PO-2,differs,quantity,2.125,7.5",
        "orders-in,PO-6,missing_in_hub,,,",
    ]
    assert "hub 5, channel 6, matched 4" in err

    code, out, _ = _reconcile(config_path, "orders-in")
    assert code == 1
    assert "missing in hub" in out and "PO-6" in out

    # A reconciliation reads both sides and writes nothing: records, deliveries, cursors.
    assert _hub_state(config_path) == before

    # A repair that does not fit the flow is refused before anything is read.
    code, _, err = _reconcile(config_path, "orders-to-erp", "--repair", "reread")
    assert code == 2 and "is an OUT flow" in err and "--repair redeliver" in err

    # Repairs, when asked: the hub re-reads what it lacks or holds stale (cursor untouched)…
    code, out, err = _reconcile(config_path, "orders-in", "--repair", "reread")
    assert code == 1, err  # the differences found before the repair
    assert "repaired: 2 record(s) re-read into the hub" in out
    records_after, deliveries_after, cursors_after = _hub_state(config_path)
    assert cursors_after == before[2]
    assert {r.key: r.version for r in records_after}["PO-2"] == 2
    assert "PO-6" in {r.key for r in records_after}
    # …which queued PO-2's and PO-6's new versions for the ERP like any change; and the ERP
    # gets again what it lacks or holds stale.
    assert len(deliveries_after) == len(before[1]) + 2
    code, out, err = _reconcile(config_path, "orders-to-erp", "--repair", "redeliver")
    assert code == 1, err
    assert "repaired: 4 record(s) queued again for delivery" in out
    _deliver(config_path)

    code, out, err = _reconcile(config_path, "plant_order", "--format", "json")
    assert code == 0, (out, err)
    for report in map(orjson.loads, out.splitlines()):
        assert report["counts"]["matched"] == 6, report


def test_unknown_names_are_refused(config_path: Path) -> None:
    code, _, err = _reconcile(config_path, "invoices")
    assert code == 2
    assert "'invoices' is neither a flow nor an entity" in err
    assert "Traceback" not in err


class _Pages(QuietHandler):
    """Two pages of customers; the test stops the server after the first."""

    served: list[int] = []

    def do_GET(self) -> None:
        page = int(self.path.rpartition("page=")[2].split("&")[0] or 1)
        type(self).served.append(page)
        items = [{"code": f"C-{page}{i}", "name": "x"} for i in range(2)] if page <= 2 else []
        body = orjson.dumps(items)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


REST_CONFIG = """
hub: {{database_url: "sqlite:///hub.db"}}
entities:
  account:
    key: [code]
    fields: {{code: {{type: string, required: true}}, name: string}}
channels:
  shop:
    system: rest
    options: {{base_url: "{url}", timeout_s: 2, connect_timeout_s: 1}}
flows:
  - name: accounts-in
    channel: shop
    entity: account
    direction: in
    source:
      resource: accounts
      pagination: {{type: page, page_size: 2, size_param: null}}
    reconcile: {{page_size: 2}}
"""


def test_channel_down_mid_way_names_place_and_cause(tmp_path: Path) -> None:
    served = serve_handler(_Pages)
    path = tmp_path / "erpbridge.yaml"
    path.write_text(REST_CONFIG.format(url=served.url), encoding="utf-8")
    config = load_config(path)
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        assert FlowRunner(config, engine).run("accounts-in").created == 4
    finally:
        engine.dispose()
    before = _hub_state(path)

    from erpbridge.engine.reconcile.run import ReconcileFailed, Reconciler

    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    reconciler = Reconciler(config, engine)
    (plan,) = reconciler.plans("accounts-in")
    original = config.open_transport

    def closing_after_first_page(channel: str) -> Any:
        transport = original(channel)
        read = transport.read

        def pages(*args: Any) -> Iterator[Any]:
            for number, batch in enumerate(read(*args)):
                yield batch
                if number == 0:
                    served.close()  # the channel goes down between two pages

        transport.read = pages  # type: ignore[method-assign]
        return transport

    config.open_transport = closing_after_first_page  # type: ignore[method-assign]
    try:
        with pytest.raises(ReconcileFailed) as failed:
            reconciler.reconcile(plan)
    finally:
        engine.dispose()
    message = str(failed.value)
    assert message.startswith("reconcile of flow 'accounts-in': channel 'shop' failed after 2")
    assert "nothing was changed" in message
    assert "127.0.0.1" in message or "refused" in message, message
    assert _hub_state(path) == before

    # The served command: exit 1, the same sentence, no traceback.
    code, _, err = _reconcile(path, "accounts-in")
    assert code == 1
    assert "reconcile of flow 'accounts-in': channel 'shop' failed after 0" in err
    assert "Traceback" not in err
