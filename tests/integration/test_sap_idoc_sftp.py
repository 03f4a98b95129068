"""IDoc XML files over SFTP (scripts/sshd.sh), the way SAP's file port exchanges them with a
partner's server: the ``sap`` IDoc presets on channels with ``transport: sftp``.

The IDocs are the hand-written samples of ``systems.sap.idoc_samples`` (the documented
structure, not exported from SAP).
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
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import deliveries, records, rejected
from erpbridge.systems.sap.idoc import read_idocs
from erpbridge.transports.base import SourceRecord
from integration.sftp_server import Sftp, sftp_server
from systems.sap.idoc_samples import DEBMAS07, ORDERS05

CONFIG = """
hub: {{database_url: "sqlite:///{db}"}}
channels:
  sap_out:
    system: sap
    transport: sftp
    options:
      host: {host}
      port: {port}
      username: {user}
      path: {box}/out
      known_hosts: {known_hosts}
      private_key: {key}
    credentials: {{private_key_passphrase: "${{KEY_PASSPHRASE}}"}}
  sap_in:
    system: sap
    transport: sftp
    options:
      host: {host}
      port: {port}
      username: {user}
      path: {box}/in
      known_hosts: {known_hosts}
      private_key: {key}
    credentials: {{private_key_passphrase: "${{KEY_PASSPHRASE}}"}}
flows:
  - {{preset: customers-idoc-in, channel: sap_out}}
  - {{preset: orders-idoc-in, channel: sap_out}}
  - preset: orders-idoc-out
    channel: sap_in
    target:
      format: idoc
      name: "ORDERS_{{key}}_v{{version}}.xml"
      idoc: {{idoc_type: ORDERS05, message_type: ORDERS, sender_port: ERPBRIDGE,
              sender_partner: ERPBRIDGE, receiver_port: SAPS4H, receiver_partner: S4HCLNT100}}
"""


@pytest.fixture(scope="module")
def sftp() -> Sftp:
    return sftp_server()


@pytest.fixture
def hub(tmp_path: Path, sftp: Sftp) -> Iterator[tuple[LoadedConfig, Engine, str]]:
    with sftp.box("out", "in") as box:
        path = tmp_path / "erpbridge.yaml"
        path.write_text(
            CONFIG.format(
                db=tmp_path / "hub.db",
                host=sftp.host,
                port=sftp.port,
                user=sftp.user,
                box=box,
                known_hosts=sftp.known_hosts,
                key=sftp.encrypted_key,
            ),
            encoding="utf-8",
        )
        engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
        yield load_config(path, env={"KEY_PASSPHRASE": sftp.passphrase}), engine, box
        engine.dispose()


def payload(engine: Engine, entity: str, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(records.c.payload).where(records.c.entity == entity, records.c.key == key)
        ).scalar_one()
    return dict(orjson.loads(row))


def test_idocs_in_and_out_over_sftp(hub: tuple[LoadedConfig, Engine, str], sftp: Sftp) -> None:
    config, engine, box = hub
    sftp.drop(f"{box}/out/DEBMAS_0000000000500001.xml", DEBMAS07)
    sftp.drop(f"{box}/out/ORDERS_0000000000481516.xml", ORDERS05)
    # An ORDERS file holding a customer master: rejected where it is, with the reason.
    sftp.drop(f"{box}/out/ORDERS_0000000000500009.xml", DEBMAS07)
    runner = FlowRunner(config, engine)

    customers = runner.run("customers-idoc-in")
    orders = runner.run("orders-idoc-in")

    assert (customers.status, customers.created, customers.rejected) == ("succeeded", 2, 0)
    assert (orders.status, orders.created, orders.rejected) == ("succeeded", 1, 2)
    assert payload(engine, "customer", "1000002")["vat_id"] == "DE129273398"
    order = payload(engine, "order", "SO-2024-0815")
    assert (order["customer_code"], order["total"], len(order["lines"])) == ("1000002", "44", 2)
    with engine.connect() as conn:
        reasons = conn.execute(
            select(rejected.c.position, rejected.c.reason).where(
                rejected.c.flow == "orders-idoc-in"
            )
        ).all()
    assert sorted(reasons) == [
        (
            f"ORDERS_0000000000500009.xml[{i}] (DOCNUM 000000000050000{i + 1})",
            "malformed IDoc: it is a DEBMAS07 IDoc; this flow reads ORDERS05",
        )
        for i in (0, 1)
    ]
    archived = sorted(p.name for p in (sftp.files / box / "out" / "archive").iterdir())
    assert archived == [
        "DEBMAS_0000000000500001.xml",
        "ORDERS_0000000000481516.xml",
        "ORDERS_0000000000500009.xml",
    ]

    # The order read from SAP goes back as an IDoc into SAP's inbound folder on the server.
    worker = Worker(config, engine)
    try:
        worker.run_once()
    finally:
        worker.close()
    with engine.connect() as conn:
        delivery_id, state = conn.execute(
            select(deliveries.c.id, deliveries.c.state).where(
                deliveries.c.flow == "orders-idoc-out"
            )
        ).one()
    assert state == "delivered"
    written = sftp.files / box / "in" / "ORDERS_SO-2024-0815_v1.xml"

    @contextlib.contextmanager
    def open_written() -> Iterator[io.BytesIO]:
        yield io.BytesIO(written.read_bytes())

    [item] = list(read_idocs(written.name, open_written, message_type="ORDERS"))
    assert isinstance(item, SourceRecord)
    assert item.data["EDI_DC40"]["DOCNUM"] == f"{delivery_id:016d}"
    assert item.data["E1EDK01"] == {"CURCY": "EUR", "BELNR": "SO-2024-0815"}
    partners = {p["PARVW"]: p for p in item.data["E1EDKA1"]}
    assert (partners["AG"]["PARTN"], partners["WE"]["ORT01"]) == ("1000002", "Wien")
    assert [p["E1EDP19"][0]["IDTNR"] for p in item.data["E1EDP01"]] == ["TG11", "RM-100"]
