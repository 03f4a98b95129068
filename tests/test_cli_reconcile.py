"""``erpbridge reconcile`` refuses what it cannot do with exit 2 and a sentence, before reading
anything; an ENTITY with a repair that fits only some of its flows repairs those only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from erpbridge.cli import app

CONFIG = """
entities:
  account:
    key: [code]
    fields: {code: {type: string, required: true}, name: string}
channels:
  erp: {system: sql, options: {url: "sqlite:///erp.db"}}
  out: {system: sql, transport: sqlwrite, options: {url: "sqlite:///erp.db"}}
flows:
  - {name: accounts-in, channel: erp, entity: account, direction: in,
     source: {table: accounts}, reconcile: {}}
  - {name: accounts-out, channel: out, entity: account, direction: out,
     target: {table: copies, key: [code]},
     reconcile: {channel: erp, source: {table: copies}}}
  - {name: customers-in, channel: erp, entity: customer, direction: in,
     source: {table: accounts}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    erp = sqlite3.connect(tmp_path / "erp.db")
    erp.execute("CREATE TABLE accounts (code TEXT PRIMARY KEY, name TEXT)")
    erp.execute("CREATE TABLE copies (code TEXT PRIMARY KEY, name TEXT)")
    erp.execute("INSERT INTO accounts VALUES ('A', 'one')")
    erp.commit()
    erp.close()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts-in", "--format", "xml"], "--format 'xml': give table, csv or json"),
        (["accounts-in", "--repair", "fix"], "--repair 'fix': give redeliver or reread"),
        (["customers-in"], "flow 'customers-in' has no `reconcile:` block"),
        (["customer"], "no flow of entity 'customer' has a `reconcile:` block"),
        (["nothing"], "'nothing' is neither a flow nor an entity"),
        (["accounts-in", "--repair", "redeliver"], "is an IN flow"),
    ],
)
def test_refusals(project: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["reconcile", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_an_entity_repairs_the_flows_the_repair_fits(project: Path) -> None:
    result = CliRunner().invoke(
        app, ["reconcile", "account", "--repair", "reread", "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    reports = {r["flow"]: r for r in map(orjson.loads, lines)}
    assert reports["accounts-in"]["repair"] == "reread"
    assert reports["accounts-in"]["repaired"] == 1
    assert reports["accounts-out"]["repair"] is None
    assert "flow accounts-out is only compared" in " ".join(result.output.split())
    again = CliRunner().invoke(app, ["reconcile", "accounts-in"])
    assert again.exit_code == 0, again.output
