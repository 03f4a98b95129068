"""Deletes pushed to a served hub (``erpbridge run`` as a subprocess): the events API's explicit
``/deletes`` and a signed webhook whose ``delete_marker`` says so make tombstone versions, shown by
the records API and delivered to the OUT flow by its ``on_delete`` policy; a delete of an id the
hub never had is answered (``unknown``) and recorded, a delete without its id is a 422 naming the
field, never a 500 (issue 19, item 2)."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import serve_hub

HOOK_SECRET = "whsec-deletes-0123456789"

CONFIG = """
channels:
  shop:
    system: platform
    credentials: {webhook_secret: "${SHOP_HOOK_SECRET}"}
    inbound:
      webhook: {flow: customers-in}
  erp: {system: folder, options: {path: erp}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    key: id
    delete_marker: {field: event, value: deleted}
    mapping: {code: {from: id, required: true}, name: {from: name, required: true}}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}-v{version}.json"}
    on_delete: deactivate
    deactivate: {Aktiv: false}
    mapping: {Kunde: code, Name: name}
"""


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {"X-Timestamp": stamp, "X-Signature": f"sha256={digest.hexdigest()}"}


def test_deletes_through_the_events_api_and_a_webhook(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    (root / "erp").mkdir(parents=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "shop", {"events", "read"})
    engine.dispose()
    env = {"SHOP_HOOK_SECRET": HOOK_SECRET}
    with (
        serve_hub(root, CONFIG, command="run", args=("--interval", "0.2"), env=env) as hub,
        hub.client(headers={"X-API-Key": key}, timeout=30) as http,
    ):
        made = http.post(
            "/api/v1/events/customers-in",
            json=[{"id": "C1", "name": "Acme"}, {"id": "C2", "name": "Bolt"}],
        )
        assert made.status_code == 202, made.text
        gone = http.post("/api/v1/events/customers-in/deletes", json=[{"id": "C1"}, {"id": "X9"}])
        assert gone.status_code == 202, gone.text
        answer = gone.json()
        assert (answer["deleted"], answer["unknown"]) == (1, ["X9"])
        assert [(r["key"], r["version"]) for r in answer["records"]] == [("C1", 2)]
        shown = http.get("/api/v1/records/customer/C1").json()
        assert shown["deleted"] is True
        assert [v["action"] for v in shown["versions"]] == ["created", "deleted"]
        assert shown["payload"]["name"] == "Acme"  # what was deleted
        # A webhook saying so with the flow's delete_marker.
        body = json.dumps({"id": "C2", "event": "deleted"}).encode()
        hooked = http.post("/hooks/shop", content=body, headers=_signed(body))
        assert hooked.status_code == 202, hooked.text
        assert hooked.json()["deleted"] == 1
        assert http.get("/api/v1/records/customer/C2").json()["deleted"] is True
        # Bad input: a delete without the channel's id names the field; nothing is stored.
        bad = http.post("/api/v1/events/customers-in/deletes", json={"name": "no id"})
        assert bad.status_code == 422, bad.text
        reason = "a deleted record without its id: nothing to delete"
        assert bad.json()["problems"] == [{"index": 0, "field": "id", "reason": reason}]
        erp = root / "erp"
        _wait_for(lambda: (erp / "C2-v2.json").exists(), "the deactivation of C2")
        output = hub.output()
    assert json.loads((erp / "C1-v2.json").read_text()) == {
        "Kunde": "C1", "Name": "Acme", "Aktiv": False
    }  # fmt: skip
    assert "Traceback" not in output, output[-3000:]
    with sqlite3.connect(root / "erpbridge.db") as db:
        warnings = [w for (w,) in db.execute("SELECT warnings FROM runs") if w]
    assert any("('X9'): nothing to delete" in w for w in warnings), warnings
