"""Deletes as versions, on SQLite and PostgreSQL: a delete is a tombstone version with its audit
row and its deliveries, a deleted record comes back with its history kept, the read model shows it
deleted (and absent as of then), and a delete naming a record the hub never had is a recorded
outcome, not an error (issue 19, item 2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.store.read import EVERYTHING, record_as_of, record_view
from erpbridge.store.tables import deliveries, runs

CONFIG = """
hub:
  database_url: {url}
entities:
  article:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: {{type: string}}
    search: [code, name]
channels:
  shop:
    system: platform
  erp:
    system: folder
    options: {{path: erp}}
  drop:
    system: folder
    options: {{path: inbox}}
flows:
  - name: files-in
    channel: drop
    entity: article
    direction: in
    source: {{pattern: "*.csv"}}
    key: id
    delete_marker: {{field: op, value: D}}
    mapping: {{code: sku, name: name}}
  - name: articles-in
    channel: shop
    entity: article
    direction: in
    key: id
    delete_marker: {{field: deleted, value: true}}
    mapping: {{code: sku, name: name}}
  - name: articles-out
    channel: erp
    entity: article
    direction: out
    target: {{format: json, name: "{{key}}-v{{version}}.json"}}
    on_delete: deactivate
    deactivate: {{active: false}}
  - name: articles-quiet
    channel: erp
    entity: article
    direction: out
    target: {{format: json, name: "quiet-{{key}}-v{{version}}.json"}}
"""


@pytest.fixture
def engine(hub_url: str) -> Iterator[Engine]:
    engine = open_store(hub_url)
    yield engine
    engine.dispose()


@pytest.fixture
def runner(tmp_path: Path, hub_url: str, engine: Engine) -> FlowRunner:
    (tmp_path / "erp").mkdir()
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(url=hub_url), encoding="utf-8")
    return FlowRunner(load_config(path), engine)


def queued(engine: Engine, flow: str) -> list[int]:
    with engine.connect() as conn:
        query = select(deliveries.c.version).where(deliveries.c.flow == flow)
        return [row.version for row in conn.execute(query.order_by(deliveries.c.id))]


def test_a_delete_is_a_version_and_a_recreated_record_keeps_its_history(
    runner: FlowRunner, engine: Engine, tmp_path: Path
) -> None:
    runner.ingest("articles-in", [{"id": 7, "sku": "A-1", "name": "Bolt"}], "event:t")
    done = runner.ingest("articles-in", [{"id": 7, "sku": "A-1", "deleted": True}], "event:t")
    assert (done.deleted, done.unchanged, done.records[0][0], done.records[0][2]) == (
        1, 0, "A-1", 2
    )  # fmt: skip
    deleted_at = datetime.now(UTC)
    # The same delete again (a re-read, a retried webhook): nothing new.
    again = runner.ingest("articles-in", [{"id": 7, "deleted": True}], "event:t")
    assert (again.deleted, again.unchanged) == (0, 1)
    # The marker only: the channel's id names the record, the mapping is not needed.
    with engine.connect() as conn:
        view = record_view(conn, EVERYTHING, "article", "A-1")
        assert view is not None and view.deleted
        assert [v.row.action for v in view.versions] == ["created", "deleted"]
        # The tombstone keeps the last payload: what was deleted stays readable.
        assert orjson.loads(view.versions[1].row.payload) == {"code": "A-1", "name": "Bolt"}
        assert view.versions[1].row.external_id == "7"
        assert record_as_of(conn, EVERYTHING, "article", "A-1", deleted_at) is None
    # The same payload as before the delete brings it back: a third version, not a new record.
    back = runner.ingest("articles-in", [{"id": 7, "sku": "A-1", "name": "Bolt"}], "event:t")
    assert (back.created, back.updated, back.records[0][2]) == (1, 0, 3)
    with engine.connect() as conn:
        view = record_view(conn, EVERYTHING, "article", "A-1")
        assert view is not None and not view.deleted
        assert [v.row.action for v in view.versions] == ["created", "deleted", "recreated"]
        assert view.row.id == done.records[0][1]
        now = record_as_of(conn, EVERYTHING, "article", "A-1", datetime.now(UTC))
        assert now is not None and now.payload == {"code": "A-1", "name": "Bolt"}
        counted = conn.execute(select(runs.c.deleted).where(runs.c.id == done.run_id))
        assert counted.scalar_one() == 1
    # The flow taking deletes got v1, the tombstone v2 and v3; the one ignoring them no v2.
    assert queued(engine, "articles-out") == [1, 2, 3]
    assert queued(engine, "articles-quiet") == [1, 3]
    # Delivered: the tombstone as the last version with the flow's deactivate fields set.
    worker = Worker(runner.config, engine)
    while worker.run_once().claimed:
        pass
    erp = tmp_path / "erp"
    assert sorted(p.name for p in erp.iterdir()) == [
        "A-1-v1.json", "A-1-v2.json", "A-1-v3.json", "quiet-A-1-v1.json", "quiet-A-1-v3.json"
    ]  # fmt: skip
    written = orjson.loads((erp / "A-1-v2.json").read_bytes())
    assert written == {"code": "A-1", "name": "Bolt", "active": False}


def test_a_delete_of_an_unknown_record_is_answered_and_recorded(
    runner: FlowRunner, engine: Engine
) -> None:
    runner.ingest("articles-in", [{"id": 1, "sku": "A-1", "name": "Bolt"}], "event:t")
    done = runner.ingest(
        "articles-in", [{"id": 99}, {"id": 1}], "event:t", deletes=True
    )  # an explicit delete (the events API's): every record names one
    assert (done.deleted, done.unknown) == (1, ("99",))
    with engine.connect() as conn:
        warnings = conn.execute(select(runs.c.warnings).where(runs.c.id == done.run_id))
        text = warnings.scalar_one()
    assert "1 delete(s) of record(s) the hub does not hold from this channel ('99')" in text
    # Nothing of the known record was lost, and the unknown one was not invented.
    with engine.connect() as conn:
        assert record_view(conn, EVERYTHING, "article", "99") is None


def test_a_delete_without_the_channels_id_is_rejected_with_the_field(runner: FlowRunner) -> None:
    from erpbridge.engine.runner import EventRejected

    with pytest.raises(EventRejected) as caught:
        runner.ingest("articles-in", [{"sku": "A-1", "deleted": True}], "event:t")
    assert caught.value.problems == [
        (0, "id", "a deleted record without its id: nothing to delete")
    ]


def test_a_file_row_with_the_delete_marker_deletes_its_record(
    runner: FlowRunner, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "1.csv").write_text("id,sku,name,op\n7,A-1,Bolt,\n8,A-2,Nut,\n", encoding="utf-8")
    assert runner.run("files-in").created == 2
    # The ERP's export names the deleted article by its id and operation code only.
    (inbox / "2.csv").write_text("id,sku,name,op\n8,,,D\n", encoding="utf-8")
    done = runner.run("files-in")
    assert (done.status, done.deleted, done.rejected) == ("succeeded", 1, 0), done.error
    with runner.engine.connect() as conn:
        view = record_view(conn, EVERYTHING, "article", "A-2")
        assert view is not None and view.deleted


def test_a_backfill_leaves_deleted_records_out(runner: FlowRunner, engine: Engine) -> None:
    from erpbridge.engine.backfill import BackfillRequest, Filler

    records = [{"id": i, "sku": f"A-{i}", "name": "x"} for i in (1, 2, 3)]
    runner.ingest("articles-in", records, "event:t")
    runner.ingest("articles-in", [{"id": 2}], "event:t", deletes=True)
    result = Filler(runner.config, engine).backfill(BackfillRequest("articles-quiet"))
    # A-2 is deleted in the hub: not looked at (the other two were queued live already).
    assert (result.status, result.scanned, result.queued) == ("succeeded", 2, 0)


def test_a_delete_naming_a_card_number_or_a_nul_is_rejected_not_looked_up(
    runner: FlowRunner, engine: Engine
) -> None:
    from erpbridge.engine.runner import EventRejected

    bad = [{"id": "4111111111111111"}, {"id": "A\x00B"}]
    with pytest.raises(EventRejected) as caught:
        runner.ingest("articles-in", bad, "event:t", deletes=True)
    reasons = [(index, path) for index, path, _ in caught.value.problems]
    assert reasons == [(0, "id"), (1, "id")]
    assert "card number" in caught.value.problems[0][2] and "NUL" in caught.value.problems[1][2]
    with engine.connect() as conn:  # nothing of the request was stored
        assert conn.execute(select(runs.c.id)).first() is None


def test_a_deleted_record_leaves_the_search_help_until_it_comes_back(
    runner: FlowRunner, engine: Engine
) -> None:
    from erpbridge.store.search import SearchSpec, search

    spec = SearchSpec.of("article", runner.config.entities["article"])
    assert spec is not None

    def found() -> list[str]:
        with engine.connect() as conn:
            return [hit.key for hit in search(conn, spec, "Bolt")]

    runner.ingest("articles-in", [{"id": 7, "sku": "A-1", "name": "Bolt"}], "event:t")
    assert found() == ["A-1"]
    runner.ingest("articles-in", [{"id": 7}], "event:t", deletes=True)
    assert found() == []
    runner.ingest("articles-in", [{"id": 7, "sku": "A-1", "name": "Bolt"}], "event:t")
    assert found() == ["A-1"]
