"""Deletes from a real SAP CAP service (scripts/cap.sh), over OData V4 and V2: a pricing condition
record flagged ``ConditionIsDeleted`` (S/4HANA's deletion flag on VK11 records) becomes a
tombstone through the flow's ``delete_marker``; a business partner removed from the service is
found by a key sweep and becomes one too (issue 19, item 2).

CAP has no OData change tracking, so a V4 delta answer's ``@removed`` entries cannot be produced
by this service: that form (``delta: true``) is tested against the OData specification's delta
payloads in tests/transports/odata/test_delta.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from integration.cap_service import PASSWORD, USER, Service
from integration.servers import require_server
from integration.versions import actions

CONFIG = """
hub: {{database_url: "sqlite:///{hub}"}}
entities:
  condition:
    key: [record]
    fields:
      record: {{type: string, required: true}}
      rate: decimal
  partner:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: string
channels:
  s4_prices:
    system: odata
    options:
      base_url: "{base}/odata/v{v}/API_SLSPRICINGCONDITIONRECORD_SRV/"
      version: "{v}"
      auth: {{type: basic, username: {user}}}
    credentials: {{password: "${{CAP_PASSWORD}}"}}
  s4_bp:
    system: odata
    options:
      base_url: "{base}/odata/v{v}/API_BUSINESS_PARTNER/"
      version: "{v}"
      auth: {{type: basic, username: {user}}}
    credentials: {{password: "${{CAP_PASSWORD}}"}}
  shop:
    system: platform
flows:
  - name: shop-in
    channel: shop
    entity: partner
    direction: in
  - name: partners-out
    channel: s4_bp
    entity: partner
    direction: out
    target: {{entity_set: A_BusinessPartner}}
    on_delete: delete
    retry: {{max_attempts: 3, backoff_s: 0.001, min_delay_s: 0}}
    mapping: {{BusinessPartner: code, BusinessPartnerFullName: name}}
  - name: conditions-in
    channel: s4_prices
    entity: condition
    direction: in
    source: {{entity_set: A_SlsPrcgConditionRecord, page_size: 50}}
    key: ConditionRecord
    delete_marker: {{field: ConditionIsDeleted, value: true}}
    mapping: {{record: ConditionRecord, rate: ConditionRateValue}}
  - name: partners-in
    channel: s4_bp
    entity: partner
    direction: in
    source: {{entity_set: A_BusinessPartner, page_size: 50}}
    key: BusinessPartner
    key_sweep: 1d
    mapping: {{code: BusinessPartner, name: BusinessPartnerFullName}}
"""


@pytest.fixture(params=["4", "2"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FlowRunner]:
    cap = require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service (scripts/cap.sh)")
    path = tmp_path / "erpbridge.yaml"
    text = CONFIG.format(hub=tmp_path / "hub.db", base=cap, v=request.param, user=USER)
    path.write_text(text, encoding="utf-8")
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield FlowRunner(load_config(path, env={"CAP_PASSWORD": PASSWORD}), engine)
    engine.dispose()


@pytest.fixture
def service() -> Iterator[Service]:
    own = Service(require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service"))
    yield own
    own.close()


def test_a_condition_record_flagged_deleted_becomes_a_tombstone(
    runner: FlowRunner, service: Service
) -> None:
    record = uuid.uuid4().hex[:10].upper()
    path = f"API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgConditionRecord('{record}')"
    service.post(
        "API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgConditionRecord",
        {"ConditionRecord": record, "ConditionType": "PR00", "ConditionRateValue": 12.5},
    )
    try:
        first = runner.run("conditions-in")
        assert (first.status, first.deleted) == ("succeeded", 0), first.error
        service.patch(path, {"ConditionIsDeleted": True})  # VK11: "deletion flag" set
        second = runner.run("conditions-in")
        assert (second.status, second.deleted, second.created, second.updated) == (
            "succeeded", 1, 0, 0
        )  # fmt: skip
        assert actions(runner.engine, "condition", record) == ["created", "deleted", "(deleted)"]
        assert runner.run("conditions-in").deleted == 0  # read again: deleted already
    finally:
        service.client.delete(path, headers={"If-Match": "*"})


def test_a_partner_removed_from_the_service_is_found_by_the_key_sweep(
    runner: FlowRunner, service: Service
) -> None:
    code = "D" + uuid.uuid4().hex[:7].upper()
    path = f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')"
    service.post("API_BUSINESS_PARTNER/A_BusinessPartner",
                 {"BusinessPartner": code, "BusinessPartnerFullName": "Vanishing KG"})  # fmt: skip
    try:
        first = runner.run("partners-in")
        assert (first.mode, first.status, first.deleted) == ("sweep", "succeeded", 0), first.error
        assert actions(runner.engine, "partner", code) == ["created"]
    finally:
        service.client.delete(path, headers={"If-Match": "*"}).raise_for_status()
    swept = runner.run("partners-in", full=True)
    assert (swept.status, swept.deleted) == ("succeeded", 1), swept.error
    assert actions(runner.engine, "partner", code) == ["created", "deleted", "(deleted)"]
    assert actions(runner.engine, "partner", "1000002") == ["created"]  # still there: untouched


def test_on_delete_delete_removes_the_entity_from_the_service(
    runner: FlowRunner, service: Service
) -> None:
    code = "X" + uuid.uuid4().hex[:7].upper()
    path = f"API_BUSINESS_PARTNER/A_BusinessPartner('{code}')"
    runner.ingest("shop-in", [{"code": code, "name": "Short-lived AG"}], "t")
    worker = Worker(runner.config, runner.engine)
    try:
        assert worker.run_once().delivered == 1
        found = service.get(path)
        assert found is not None and found["BusinessPartnerFullName"] == "Short-lived AG"
        assert runner.ingest("shop-in", [{"code": code}], "t", deletes=True).deleted == 1
        stats = worker.run_once()
        assert (stats.delivered, stats.dead, stats.retried) == (1, 0, 0)
        assert service.get(path) is None
    finally:
        worker.close()
        service.client.delete(path, headers={"If-Match": "*"})
