"""IDoc XML files through the folder transport and the real engine, with the ``sap`` system
type's IDoc presets on channels that use ``transport: folder`` — as SAP's XML file port would
meet them: customer masters and invoices arrive, orders leave; malformed IDocs and files are
rejected with place and reason while the rest goes on.

The IDocs are the hand-written samples of ``idoc_samples`` (the documented structure).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig, parse_config
from erpbridge.engine.worker import Worker
from erpbridge.errors import ConfigError
from erpbridge.store.tables import deliveries, records, rejected
from erpbridge.systems.sap.idoc import read_idocs
from erpbridge.transports.base import SourceRecord
from systems.sap.idoc_samples import CONTROL, DEBMAS07, INVOIC02, ORDERS05

CONFIG = """
hub: {{database_url: "sqlite:///{db}"}}
channels:
  sap_files:                       # SAP's outbound file port writes here
    system: sap
    transport: folder
    options: {{path: from-sap}}
  sap_inbound:                     # SAP's inbound file port reads from here
    system: sap
    transport: folder
    options: {{path: to-sap}}
  shop:
    system: folder
    options: {{path: shop}}
flows:
  - {{preset: customers-idoc-in, channel: sap_files}}
  - {{preset: invoices-idoc-in, channel: sap_files}}
  - preset: orders-idoc-out
    channel: sap_inbound
    retry: {{max_attempts: 2, backoff_s: 0.001, min_delay_s: 0}}
    target:
      format: idoc
      name: "ORDERS_{{key}}_v{{version}}.xml"
      idoc:
        idoc_type: ORDERS05
        message_type: ORDERS
        sender_port: SHOPFILE
        sender_partner_type: KU
        sender_partner: "1000002"
        receiver_port: SAPS4H
        receiver_partner: S4HCLNT100
        client: "100"
  - name: orders-from-shop
    channel: shop
    entity: order
    direction: in
    source: {{pattern: "*.json"}}
"""


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[LoadedConfig, Engine]]:
    for folder in ("from-sap", "to-sap", "shop"):
        (tmp_path / folder).mkdir()
    path = tmp_path / "erpbridge.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "hub.db"), encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield load_config(path), engine
    engine.dispose()


def payload(engine: Engine, entity: str, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one_or_none()
    return None if row is None else dict(orjson.loads(row))


def rejections(engine: Engine, flow: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(rejected.c.position, rejected.c.reason)
            .where(rejected.c.flow == flow)
            .order_by(rejected.c.id)
        )
        return [(r.position, r.reason) for r in rows]


def test_customer_masters_arrive_and_a_malformed_idoc_waits_with_its_reason(
    hub: tuple[LoadedConfig, Engine],
) -> None:
    config, engine = hub
    inbox = config.base_dir / "from-sap"
    (inbox / "DEBMAS_0000000000500001.xml").write_text(DEBMAS07, encoding="utf-8")
    no_number = CONTROL.format(docnum="0000000000500003", idoctyp="DEBMAS07", mestyp="DEBMAS")
    malformed = (
        f'<DEBMAS07><IDOC BEGIN="1">{no_number}<E1KNA1M SEGMENT="1"><NAME1>Ohne Nummer'
        "</NAME1><NAME1>doppelt</NAME1></E1KNA1M></IDOC></DEBMAS07>"
    )
    (inbox / "DEBMAS_0000000000500003.xml").write_text(malformed, encoding="utf-8")
    (inbox / "DEBMAS_0000000000500004.xml").write_text("<DEBMAS07><IDOC>", encoding="utf-8")
    (inbox / "INVOIC_0000000000600001.xml").write_text(INVOIC02, encoding="utf-8")
    runner = FlowRunner(config, engine)

    result = runner.run("customers-idoc-in")

    assert (result.status, result.read, result.created, result.rejected) == (
        "succeeded",
        2,
        2,
        2,
    )
    acme = payload(engine, "customer", "1000002")
    assert acme is not None
    assert (acme["name"], acme["currency"], acme["payment_terms"]) == (
        "Acme Industrie GmbH",
        "EUR",
        "0004",
    )
    assert (payload(engine, "customer", "1000006") or {})["locked"] is True
    assert rejections(engine, "customers-idoc-in") == [
        (
            "DEBMAS_0000000000500003.xml[0] (DOCNUM 0000000000500003)",
            "malformed IDoc: NAME1 appears twice in IDOC.E1KNA1M as a field",
        ),
        ("DEBMAS_0000000000500004.xml", "XML syntax error: no element found: line 1, column 16"),
    ]
    assert sorted(p.name for p in (inbox / "archive").iterdir()) == [
        "DEBMAS_0000000000500001.xml",
        "DEBMAS_0000000000500003.xml",  # read: its bad IDoc waits as a rejection
    ]
    assert sorted(p.name for p in (inbox / "error").iterdir()) == [
        "DEBMAS_0000000000500004.xml",
        "DEBMAS_0000000000500004.xml.reason.txt",
    ]
    # The invoice is not this flow's: left for its own flow, which reads it.
    assert (inbox / "INVOIC_0000000000600001.xml").exists()
    invoices = runner.run("invoices-idoc-in")
    assert (invoices.created, invoices.rejected) == (1, 0)
    assert (payload(engine, "invoice", "0090000123") or {})["total"] == "51.17"

    # SAP sends the same master again (ALE change pointers): nothing changes in the hub.
    (inbox / "DEBMAS_0000000000500005.xml").write_text(DEBMAS07, encoding="utf-8")
    again = runner.run("customers-idoc-in")
    assert (again.read, again.created, again.updated, again.unchanged) == (2, 0, 0, 2)


def test_an_idoc_of_another_type_in_a_flows_files_is_rejected(
    hub: tuple[LoadedConfig, Engine],
) -> None:
    config, engine = hub
    # Misnamed by the sender: an order where the invoices flow looks.
    (config.base_dir / "from-sap" / "INVOIC_0000000000481516.xml").write_text(ORDERS05)

    result = FlowRunner(config, engine).run("invoices-idoc-in")

    assert (result.status, result.read, result.rejected) == ("succeeded", 0, 1)
    assert rejections(engine, "invoices-idoc-in") == [
        (
            "INVOIC_0000000000481516.xml[0] (DOCNUM 0000000000481516)",
            "malformed IDoc: it is a ORDERS05 IDoc; this flow reads INVOIC02",
        )
    ]


def test_orders_leave_as_orders05_files_for_sap(hub: tuple[LoadedConfig, Engine]) -> None:
    config, engine = hub
    order = {
        "number": "SO-1001",
        "customer_code": "1000002",
        "po_number": "PO-4712",
        "order_date": "2024-06-03",
        "currency": "EUR",
        "total": "20.00",
        "lines": [{"line_no": 10, "sku": "TG11", "quantity": "2", "unit": "pcs", "amount": "20"}],
    }
    (config.base_dir / "shop" / "o1.json").write_bytes(orjson.dumps([order]))
    assert FlowRunner(config, engine).run("orders-from-shop").created == 1

    worker = Worker(config, engine)
    try:
        worker.run_once()
    finally:
        worker.close()

    with engine.connect() as conn:
        ledger = conn.execute(
            select(deliveries.c.id, deliveries.c.state, deliveries.c.external_id).where(
                deliveries.c.flow == "orders-idoc-out"
            )
        ).one()
    assert ledger.state == "delivered"
    written = config.base_dir / "to-sap" / "ORDERS_SO-1001_v1.xml"
    assert ledger.external_id == written.name

    @contextlib.contextmanager
    def open_written() -> Iterator[io.BytesIO]:
        yield io.BytesIO(written.read_bytes())

    [item] = list(read_idocs(written.name, open_written, idoc_type="ORDERS05"))
    assert isinstance(item, SourceRecord)
    control = item.data["EDI_DC40"]
    assert (control["DOCNUM"], control["SNDPRT"], control["SNDPRN"], control["MANDT"]) == (
        f"{ledger.id:016d}",
        "KU",
        "1000002",
        "100",
    )
    assert item.data["E1EDK01"] == {"CURCY": "EUR", "BELNR": "SO-1001"}
    assert item.data["E1EDKA1"] == [{"PARVW": "AG", "PARTN": "1000002"}]
    assert item.data["E1EDP01"] == [
        {"POSEX": "10", "MENGE": "2", "MENEE": "PCE", "NETWR": "20",
         "E1EDP19": [{"QUALF": "002", "IDTNR": "TG11"}]}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flow", "where", "message"),
    [
        (
            "  - {name: x, channel: sap, entity: order, direction: out, target: {format: idoc}}\n",
            "flows[0].target",
            "format: idoc needs an idoc block",
        ),
        (
            "  - {name: x, channel: sap, entity: customer, direction: in,\n"
            "     source: {format: csv, idoc_type: DEBMAS07}}\n",
            "flows[0].source",
            "idoc_type and message_type apply to format: idoc",
        ),
        (
            "  - {name: x, channel: sap, entity: order, direction: out,\n"
            "     target: {format: idoc, idoc: {idoc_type: ORDERS05}}}\n",
            "flows[0].target.idoc.message_type",
            "required setting is missing",
        ),
    ],
)
def test_idoc_options_are_checked_when_the_file_is_loaded(
    tmp_path: Path, flow: str, where: str, message: str
) -> None:
    text = "channels:\n  sap: {system: sap, transport: folder, options: {path: x}}\nflows:\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text + flow, tmp_path / "c.yaml")
    assert where in str(caught.value) and message in str(caught.value)
