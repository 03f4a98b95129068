"""``erpbridge channels list|test`` on real folders, a real SQLite database and a real socket."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from erpbridge.cli import app

CONFIG = """
channels:
  shop:
    system: folder
    options: {path: inbox}
  mes:
    system: sql
    options: {url: "sqlite:///mes.db"}
flows:
  - name: products-in
    channel: shop
    entity: product
    direction: in
    source: {pattern: "*.csv"}
    mapping:
      sku: {from: Artikel, required: true}
      name: Bezeichnung
  - name: orders-in
    channel: mes
    entity: production_order
    direction: in
    source: {table: orders, cursor: {column: changed, tiebreaker: id}}
    mapping:
      order_code: {from: order_no, required: true}
      product_code: item
      quantity: qty
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    with sqlite3.connect(tmp_path / "mes.db") as db:
        db.execute(
            "CREATE TABLE orders"
            " (id INTEGER PRIMARY KEY, order_no TEXT, item TEXT, qty INT, changed TEXT)"
        )
        db.execute("INSERT INTO orders VALUES (1, 'PO-1', 'A-1', 5, '2026-01-01T00:00:00')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_list_shows_channels_and_their_flows(project: Path) -> None:
    code, out = run("channels", "list")
    assert code == 0, out
    assert "shop" in out and "folder" in out and "products-in (in)" in out
    assert "mes" in out and "orders-in (in)" in out


def test_all_channels_fine_with_a_sample_that_maps(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text(
        "Artikel,Bezeichnung\nA-1,Schraube\n", encoding="utf-8"
    )
    code, out = run("channels", "test", "--all")
    assert code == 0, out
    assert "channel shop (folder): ok" in out
    assert "p.csv:2 maps to product" in out
    assert "orders#" in out and "maps to production_order" in out
    assert (project / "inbox" / "p.csv").exists(), "a sample read never archives a file"


def test_schema_mismatch_in_the_sample_is_named(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text("Article,Name\nA-1,Schraube\n", encoding="utf-8")
    code, out = run("channels", "test", "shop")
    assert code == 1
    assert "flow products-in: schema" in out
    assert "Artikel" in out


def test_missing_table_is_a_schema_problem(project: Path) -> None:
    with sqlite3.connect(project / "mes.db") as db:
        db.execute("ALTER TABLE orders RENAME TO orders_old")
    code, out = run("channels", "test", "mes")
    assert code == 1
    assert "orders" in out


def test_missing_inbox_fails_the_connection_check(project: Path) -> None:
    (project / "inbox").rmdir()
    code, out = run("channels", "test", "shop", "--no-sample")
    assert code == 1
    assert "inbox" in out and "does not exist" in out


def test_unknown_channel_and_no_channel(project: Path) -> None:
    code, out = run("channels", "test", "erp")
    assert code == 2 and "no channel named erp (channels: shop, mes)" in out
    code, out = run("channels", "test")
    assert code == 2 and "name a channel or use --all" in out
