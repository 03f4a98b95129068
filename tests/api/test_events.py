"""Inbound events and webhooks end to end: pushed through the API, stored with their deliveries,
written OUT by the real worker to the ERP folder; and every bad request refused, nothing stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import orjson
from sqlalchemy import select

from api.conftest import HOOK_SECRET, Project
from erpbridge.config.loader import load_config
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import deliveries, records, rejected, runs

CARD = "4111 1111 1111 1111"


def _post(project: Project, flow: str, body: object, key: str = "shop", **headers: str):  # type: ignore[no-untyped-def]
    with project.client(**{"X-API-Key": project.keys[key], **headers}) as http:
        return http.post(f"/api/v1/events/{flow}", json=body)


def test_event_lands_with_its_delivery_and_goes_out(project: Project) -> None:
    answer = _post(
        project,
        "customers-in",
        [
            {"id": "C-1", "name": "Muster GmbH", "limit": "1500.50"},
            {"id": "C-2", "name": "Beispiel AG"},
        ],
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["created"] == 2 and body["flow"] == "customers-in"
    assert [(r["key"], r["version"]) for r in body["records"]] == [("C-1", 1), ("C-2", 1)]
    with project.engine.connect() as conn:
        row = conn.execute(select(records).where(records.c.key == "C-1")).one()
        assert orjson.loads(row.payload)["credit_limit"] == "1500.5"
        assert row.id == body["records"][0]["id"]
        queued = conn.execute(select(deliveries.c.key, deliveries.c.state)).all()
        run = conn.execute(select(runs).where(runs.c.id == body["run_id"])).one()
    assert sorted(queued) == [("C-1", "pending"), ("C-2", "pending")]
    assert run.mode == "event" and run.status == "succeeded" and run.created == 2

    worker = Worker(load_config(project.root / "erpbridge.yaml"), project.engine)
    worker.run_once()
    worker.close()
    written = json.loads((project.root / "erp" / "customer-C-1-v1.json").read_text())
    assert written == {"Kunde": "C-1", "Name": "Muster GmbH"}

    # The same event again changes nothing and queues nothing.
    again = _post(project, "customers-in", {"id": "C-1", "name": "Muster GmbH", "limit": "1500.50"})
    assert again.status_code == 202 and again.json()["unchanged"] == 1
    with project.engine.connect() as conn:
        assert conn.execute(select(deliveries)).all().__len__() == 2


def test_a_bad_record_rejects_the_whole_request(project: Project) -> None:
    before = project.counts()
    answer = _post(project, "customers-in", [{"id": "C-1", "name": "ok"}, {"id": "C-2"}])
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"]["code"] == "rejected"
    assert body["problems"] == [
        {"index": 1, "field": "name", "reason": body["problems"][0]["reason"]}
    ]
    assert "required" in body["problems"][0]["reason"]
    assert project.counts() == before


def test_idempotency_key_replays_the_first_answer(project: Project) -> None:
    event = {"id": "C-9", "name": "Once"}
    first = _post(project, "customers-in", event, **{"Idempotency-Key": "order-77"})
    second = _post(project, "customers-in", event, **{"Idempotency-Key": "order-77"})
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    with project.engine.connect() as conn:
        assert len(conn.execute(select(runs)).all()) == 1
    other = _post(
        project, "customers-in", {"id": "C-9", "name": "Changed"}, **{"Idempotency-Key": "order-77"}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_card_number_is_refused_and_never_stored(project: Project) -> None:
    before = project.counts()
    answer = _post(project, "tokens-in", {"token": CARD, "customer": "C-1", "last4": "1111"})
    assert answer.status_code == 422
    assert "card number" in answer.text
    assert "4111" not in answer.text.replace('"1111"', "")
    assert project.counts() == before
    good = _post(project, "tokens-in", {"token": "tok_9f8e7d", "customer": "C-1", "last4": "1111"})
    assert good.status_code == 202
    with project.engine.connect() as conn:
        blobs = " ".join(r.payload for r in conn.execute(select(records.c.payload)))
    assert "4111111111111111" not in blobs.replace(" ", "") and "tok_9f8e7d" in blobs


def test_card_number_in_a_rejected_source_record_is_scrubbed(
    project: Project, tmp_path: Path
) -> None:
    # The same guard on a polled source: the rejection keeps the payload, minus the number.
    from erpbridge.engine.runner import FlowRunner

    (project.root / "tokens").mkdir()
    (project.root / "tokens" / "t.csv").write_text(f"token,customer\n{CARD},C-1\n")
    text = (
        (project.root / "erpbridge.yaml").read_text()
        + """
  - name: tokens-file
    channel: files
    entity: payment_token
    direction: in
    source: {pattern: "*.csv"}
    mapping:
      token: {from: token, required: true}
      customer_code: customer
"""
    )
    text = text.replace(
        "  erp:\n", "  files:\n    system: folder\n    options: {path: tokens}\n  erp:\n"
    )
    (project.root / "erpbridge.yaml").write_text(text)
    result = FlowRunner(load_config(project.root / "erpbridge.yaml"), project.engine).run(
        "tokens-file"
    )
    assert result.rejected == 1
    with project.engine.connect() as conn:
        row = conn.execute(select(rejected)).one()
    assert "card number" in row.reason and "4111" not in row.reason
    assert orjson.loads(row.payload) == {"token": "[card number removed]", "customer": "C-1"}


def test_bad_bodies(project: Project) -> None:
    before = project.counts()
    with project.client(
        **{"X-API-Key": project.keys["shop"], "Content-Type": "application/json"}
    ) as http:
        broken = http.post("/api/v1/events/customers-in", content=b'{"id": "C-1",')
        assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]
        scalar = http.post("/api/v1/events/customers-in", content=b"[1, 2]")
        assert scalar.status_code == 400 and "record 0 is a int" in scalar.text
        empty = http.post("/api/v1/events/customers-in", content=b"[]")
        assert empty.status_code == 400
        huge = http.post("/api/v1/events/customers-in", content=b" " * (11 * 1024 * 1024))
        assert huge.status_code == 413
        out_flow = http.post("/api/v1/events/customers-out", json={"id": "x"})
        assert out_flow.status_code == 409
        unknown = http.post("/api/v1/events/nope", json={"id": "x"})
        assert unknown.status_code == 404
    assert project.counts() == before


def test_paused_flow_refuses_events_until_resumed(project: Project) -> None:
    with project.client(**{"X-API-Key": project.keys["admin"]}) as http:
        assert http.post("/api/v1/flows/customers-in/disable").json()["enabled"] is False
    paused = _post(project, "customers-in", {"id": "C-1", "name": "x"})
    assert paused.status_code == 409 and "paused" in paused.json()["error"]["message"]
    with project.client(**{"X-API-Key": project.keys["admin"]}) as http:
        assert http.post("/api/v1/flows/customers-in/enable").json()["enabled"] is True
        audit = http.get("/api/v1/audit").json()
    assert [a["action"] for a in audit[:2]] == ["flow.enable", "flow.disable"]
    assert audit[0]["actor"] == "admin" and audit[0]["address"] == "127.0.0.1"
    assert _post(project, "customers-in", {"id": "C-1", "name": "x"}).status_code == 202


def _signed(body: bytes, stamp: int, secret: str = HOOK_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), str(stamp).encode() + b"." + body, hashlib.sha256)
    return {
        "X-Signature": "sha256=" + digest.hexdigest(),
        "X-Timestamp": str(stamp),
        "Content-Type": "application/json",
    }


def test_webhook_signed_lands(project: Project) -> None:
    body = orjson.dumps({"data": [{"id": "W-1", "name": "Hook GmbH"}]})
    with project.client(**_signed(body, int(time.time()))) as http:
        answer = http.post("/hooks/shop", content=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["records"][0]["key"] == "W-1"


def test_webhook_refusals_write_nothing(project: Project) -> None:
    body = orjson.dumps({"data": [{"id": "W-1", "name": "Hook GmbH"}]})
    before = project.counts()
    stamp = int(time.time())
    cases = [
        (_signed(body, stamp, "wrong-secret"), "127.0.0.1", 401, "does not match"),
        (_signed(body, stamp - 3600), "127.0.0.1", 401, "replay"),
        ({**_signed(body, stamp), "X-Timestamp": "soon"}, "127.0.0.1", 401, "not a Unix time"),
        ({"Content-Type": "application/json"}, "127.0.0.1", 401, "Unix time"),
        (_signed(body, stamp), "198.51.100.1", 403, "may not send"),
    ]
    for headers, peer, status, text in cases:
        with project.client(peer, **headers) as http:
            answer = http.post("/hooks/shop", content=body)
        assert answer.status_code == status, (text, answer.text)
        assert text in answer.json()["error"]["message"]
    tampered = body.replace(b"Hook GmbH", b"Evil GmbH")
    with project.client(**_signed(body, stamp)) as http:
        assert http.post("/hooks/shop", content=tampered).status_code == 401
    with project.client(**_signed(body, stamp)) as http:
        assert http.post("/hooks/other", content=body).status_code == 404
    assert project.counts() == before
