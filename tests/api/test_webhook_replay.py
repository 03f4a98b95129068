"""Webhook replays against the hub served as a user starts it (``erpbridge api`` subprocesses on
free ports sharing one store): a captured signed webhook sent again inside the tolerance is
refused and writes nothing, in whichever API process it lands; and a late delivery of an older
version (by the flow's ``version_field``) never reverts the record to older content."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, select

from erpbridge.store.tables import records, runs, webhook_signatures
from hubprocess import ServedHub, serve_hub

SECRET = "hook-secret-for-tests"
CONFIG = """
channels:
  shop:
    system: platform
    credentials: {webhook_secret: "${SHOP_HOOK_SECRET}"}
    inbound:
      webhook: {flow: articles-in, records_path: data}
entities:
  article:
    key: [code]
    fields:
      code: {type: string, required: true}
      name: {type: string}
      updated_at: {type: datetime}
flows:
  - name: articles-in
    channel: shop
    entity: article
    direction: in
    trigger: immediate
    version_field: updated_at
    mapping:
      code: {from: id, required: true}
      name: {from: name, required: true}
      updated_at: changed
"""


def signed(body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": str(stamp), "X-Signature": f"sha256={digest}"}


def article(name: str, changed: str) -> bytes:
    return orjson.dumps({"data": [{"id": "A-1", "name": name, "changed": changed}]})


@pytest.fixture
def env() -> dict[str, str]:
    return {"SHOP_HOOK_SECRET": SECRET, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}


@pytest.fixture
def hub(tmp_path: Path, env: dict[str, str]) -> Iterator[ServedHub]:
    with serve_hub(tmp_path, CONFIG, env=env) as served:
        yield served


def store(hub: ServedHub) -> dict[str, Any]:
    engine = create_engine(f"sqlite:///{hub.database}")
    with engine.connect() as conn:
        payload = conn.execute(select(records.c.payload, records.c.version)).one_or_none()
        found = {
            "runs": conn.execute(select(func.count()).select_from(runs)).scalar_one(),
            "record": (orjson.loads(payload[0])["name"], payload[1]) if payload else None,
            "stale": conn.execute(select(func.sum(runs.c.stale))).scalar_one(),
            "signatures": conn.execute(
                select(func.count()).select_from(webhook_signatures)
            ).scalar_one(),
        }
    engine.dispose()
    return found


def post(hub: ServedHub, body: bytes, headers: dict[str, str]) -> Any:
    with hub.client() as http:
        return http.post("/hooks/shop", content=body, headers=headers)


def test_a_replayed_webhook_is_refused_in_every_process_and_writes_nothing(
    hub: ServedHub, env: dict[str, str]
) -> None:
    with serve_hub(hub.root, CONFIG, env=env) as second:  # a second API process, same store
        _replays_refused(hub, second)


def _replays_refused(first: ServedHub, second: ServedHub) -> None:
    old, new = (
        article("Bolt v1", "2026-12-01T10:00:00Z"),
        article("Bolt v2", "2026-12-01T11:00:00Z"),
    )
    old_headers, new_headers = signed(old), signed(new)
    assert post(first, old, old_headers).status_code == 202
    assert post(first, new, new_headers).status_code == 202
    before = store(first)
    assert before["record"] == ("Bolt v2", 2)

    for hub in (first, second):  # captured v1 sent again, to either API process
        answer = post(hub, old, old_headers)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == {
            "code": "replayed_webhook",
            "message": "webhook of 'shop': this signature was accepted before; a replay is refused",
        }
    assert post(second, new, new_headers).status_code == 409

    assert store(first) == before  # no run, no version, the newer content stands
    assert "Traceback" not in first.output() + second.output()


def test_an_older_version_signed_anew_is_skipped_and_counted(hub: ServedHub) -> None:
    new = article("Bolt v2", "2026-12-01T11:00:00+00:00")
    assert post(hub, new, signed(new)).status_code == 202
    # The sender delivers an older version late (a retry queue, a replay signed again).
    late = article("Bolt v1", "2026-12-01T10:00:00Z")
    answer = post(hub, late, signed(late))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["created"], body["updated"], body["unchanged"], body["stale"]) == (0, 0, 0, 1)
    assert body["records"] == [{"key": "A-1", "id": body["records"][0]["id"], "version": 1}]
    assert store(hub)["record"] == ("Bolt v2", 1)
    engine = create_engine(f"sqlite:///{hub.database}")
    with engine.connect() as conn:
        run = conn.execute(select(runs).where(runs.c.id == body["run_id"])).one()
    engine.dispose()
    assert (run.status, run.stale, run.updated) == ("succeeded", 1, 0)
    assert orjson.loads(run.warnings) == [
        "1 record(s) older than the stored version (updated_at): skipped, not applied"
    ]
    # A newer one still lands.
    newer = article("Bolt v3", "2026-12-01T12:00:00Z")
    assert post(hub, newer, signed(newer)).json()["updated"] == 1
    assert store(hub)["record"] == ("Bolt v3", 2)


def test_a_webhook_that_was_not_accepted_does_not_spend_its_signature(hub: ServedHub) -> None:
    nameless = orjson.dumps({"data": [{"id": "A-9", "changed": "2026-12-01T10:00:00Z"}]})
    headers = signed(nameless)
    for _ in range(2):  # the same signature answers 422 again, not 409
        answer = post(hub, nameless, headers)
        assert answer.status_code == 422, answer.text
    assert store(hub)["signatures"] == 0
    # Signed too long ago: refused as stale (401), nothing kept either.
    stale = signed(article("Bolt", "2026-12-01T10:00:00Z"), int(time.time()) - 3600)
    assert post(hub, article("Bolt", "2026-12-01T10:00:00Z"), stale).status_code == 401
    assert store(hub) == {"runs": 0, "record": None, "stale": None, "signatures": 0}
