"""An Odoo record archived (``active = False``, read with ``active_test: false``) travels as a
delete through the flow's ``delete_marker`` and comes back when it is restored (issue 19 item 2),
against the replayed Odoo of :mod:`transports.rpc.odooreplay` (Odoo cannot run here), with the hub
run as ``erpbridge sync`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from erpbridge import open_store
from hubprocess import cli_ok
from integration.versions import actions
from transports.rpc.odooreplay import (
    DATABASE,
    FIELDS,
    PARTNERS,
    PASSWORD,
    USER,
    FakeOdoo,
    serve_odoo,
)

CONFIG = """
hub: {{database_url: "sqlite:///{root}/hub.db"}}
entities:
  partner:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: {{type: string, required: true}}
channels:
  odoo:
    system: odoo
    options: {{base_url: "{url}", database: {database}, username: {user}}}
    credentials: {{password: "${{ODOO_TEST_PASSWORD}}"}}
flows:
  - name: partners-in
    channel: odoo
    entity: partner
    direction: in
    source:
      model: res.partner
      fields: [name, active]
      context: {{active_test: false}}
      cursor_field: write_date
    key: id
    delete_marker: {{field: active, value: false}}
    mapping: {{code: id, name: name}}
"""


@pytest.fixture
def odoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOdoo, Path]]:
    partners = [{**p, "active": True} for p in PARTNERS]
    fake = FakeOdoo(
        {"res.partner": partners}, {"res.partner": {**FIELDS, "active": {"type": "boolean"}}}
    )
    monkeypatch.setenv("ODOO_TEST_PASSWORD", PASSWORD)
    with serve_odoo(fake) as url:
        config = CONFIG.format(root=tmp_path, url=url, database=DATABASE, user=USER)
        (tmp_path / "erpbridge.yaml").write_text(config, encoding="utf-8")
        yield fake, tmp_path


def test_an_archived_partner_is_deleted_and_a_restored_one_comes_back(
    odoo: tuple[FakeOdoo, Path],
) -> None:
    fake, root = odoo
    cli_ok(root, "sync", "partners-in")
    axelor = next(p for p in fake.partners if p["id"] == 18)
    axelor.update(active=False, write_date="2024-06-01 09:00:00")  # archived in Odoo

    out = cli_ok(root, "sync", "partners-in")
    assert "succeeded" in out, out
    shown = cli_ok(root, "records", "partner", "--key", "18")
    assert "DELETED" in shown, shown

    axelor.update(active=True, name="Axelor SA", write_date="2024-06-02 09:00:00")  # restored
    cli_ok(root, "sync", "partners-in")
    engine = open_store(f"sqlite:///{root}/hub.db")
    try:
        assert actions(engine, "partner", "18") == ["created", "deleted", "recreated"]
        assert actions(engine, "partner", "7") == ["created"]
    finally:
        engine.dispose()
    archived_read = [a for s, m, a in fake.calls if m == "execute_kw" and a[4] == "search_read"]
    assert all(a[6].get("context", {}).get("active_test") is False for a in archived_read)
