"""The command line, driven as a user would: init, check, sync, runs, records, rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from erpbridge.cli import app

CONFIG = """
channels:
  shop:
    system: folder
    options: {path: inbox}
flows:
  - name: products-in
    channel: shop
    entity: product
    direction: in
    source: {pattern: "*.csv"}
    mapping:
      sku: {from: Artikel, required: true}
      name: Bezeichnung
      weight: {from: Gewicht, transforms: [{decimal: ","}], unit: {from: g, to: kg}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ERPBRIDGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_sync_then_look_into_the_hub(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text(
        'Artikel,Bezeichnung,Gewicht\nA-1,Schraube,"1,5"\n,Mutter,2\n', encoding="utf-8"
    )

    code, out = run("sync", "products-in")
    assert code == 0, out
    assert "products-in" in out and "succeeded" in out
    assert "1 record(s) rejected" in out

    code, out = run("records", "product")
    assert code == 0 and "A-1" in out and "1 record(s)" in out
    code, out = run("records", "product", "--key", "A-1")
    assert code == 0 and '"weight": "0.0015"' in out and "created" in out and "p.csv:2" in out
    code, out = run("runs")
    assert code == 0 and "products-in" in out
    code, out = run("rejected")
    assert code == 0 and "p.csv:3" in out and "sku" in out and "required" in out
    assert (project / "hub.db").exists() is False and (project / "erpbridge.db").exists()


def test_sync_needs_a_flow_and_names_unknown_ones(project: Path) -> None:
    code, out = run("sync")
    assert code == 1 and "name one or more flows" in out
    code, out = run("sync", "nope")
    assert code == 1 and "no flow named 'nope'" in out and "products-in" in out


def test_sync_of_a_broken_config_exits_2_with_the_place(project: Path) -> None:
    (project / "erpbridge.yaml").write_text(CONFIG.replace("unit: {from: g", "unit: {from: gramm"))
    code, out = run("sync", "--all")
    assert code == 2
    assert "erpbridge.yaml:15 flows[0].mapping.weight.unit: unknown unit 'gramm'" in out


def test_a_failed_run_exits_1(project: Path) -> None:
    (project / "inbox").rmdir()
    code, out = run("sync", "--all")
    assert code == 1 and "failed" in out and "inbox" in out


def test_dry_run_changes_nothing(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text("Artikel,Bezeichnung,Gewicht\nA-1,S,1\n")
    code, out = run("sync", "--all", "--dry-run")
    assert code == 0 and "dry run" in out
    code, out = run("records", "product")
    assert "0 record(s)" in out
    assert (project / "inbox" / "p.csv").exists()


def test_init_writes_an_example_that_checks(project: Path) -> None:
    code, out = run("init", "new.yaml")
    assert code == 0, out
    code, out = run("check", "new.yaml")
    assert code == 0, out
    code, out = run("init", "new.yaml")
    assert code == 1 and "exists" in out


def test_search_reindex(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text(
        'Artikel,Bezeichnung,Gewicht\nA-1,Schraube,"1,5"\nA-2,Mutter,2\n', encoding="utf-8"
    )
    assert run("sync", "products-in")[0] == 0
    code, out = run("search", "reindex", "product")
    assert code == 0 and "product: 2 record(s) indexed" in out
    code, out = run("search", "reindex", "order")
    assert code == 2 and "entity 'order' has no search fields" in out
    code, out = run("search", "reindex", "nope")
    assert code == 2 and "no entity named 'nope'" in out


def test_deliveries_state_is_the_ledger_vocabulary(project: Path) -> None:
    code, out = run("deliveries", "--help")
    assert code == 0 and "held" in out and "cancelled" in out
    code, out = run("deliveries", "--state", "held")
    assert code == 0, out
    code, out = run("deliveries", "--state", "lost")
    assert code != 0
    assert "'lost': no such state" in out and "in_flight, failed, held, delivered" in out
