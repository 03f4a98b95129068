"""Firing transitions through a served ``erpbridge api`` (SQLite and PostgreSQL) and the
``erpbridge transition`` / ``erpbridge transitions`` commands: the log readable everywhere,
hostile input answered with a clear 4xx naming the state and what may fire, and transitions
racing on one record: one wins, the other gets 409 with the state the record is in now."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub
from workflows.claims import config

CARD = "4111 1111 1111 1111"


@dataclass
class Served:
    hub: ServedHub
    url: str
    writer: str
    reader: str

    def post(self, key: str, name: str, body: Any = None, **headers: str) -> httpx.Response:
        with self.hub.client(headers={"X-API-Key": self.writer, **headers}) as client:
            path = f"/api/v1/records/warranty_claim/{key}/transitions/{name}"
            return client.post(path, json=body) if body is not None else client.post(path)

    def get(self, path: str) -> httpx.Response:
        with self.hub.client(headers={"X-API-Key": self.reader}) as client:
            return client.get(path)

    def claim(self, number: str, **fields: Any) -> None:
        body = {"number": number, "amount": "120.00", **fields}
        with self.hub.client(headers={"X-API-Key": self.writer}) as client:
            assert client.post("/api/v1/events/claims-vms", json=body).status_code == 202

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "erpbridge", *args, "-c", str(self.hub.config)]
        env = {**os.environ, "ERPBRIDGE_DATABASE_URL": self.url, "COLUMNS": "200"}
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("transitions") / "hub"
    root.mkdir()
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'erpbridge.db'}"
        env: dict[str, str] = {}
    else:
        url = request.getfixturevalue("module_pg_database")
        env = {"ERPBRIDGE_DATABASE_URL": url}
    engine = open_store(url)
    writer = create_client(engine, "portal", {"events", "write"})[1]
    reader = create_client(engine, "auditor", {"read"})[1]
    engine.dispose()
    with serve_hub(root, config(), env=env) as hub:
        yield Served(hub, url, writer, reader)


def test_fire_and_read_the_log_through_the_api(served: Served) -> None:
    served.claim("A-1")
    review = served.post("A-1", "review", {"reason": "dealer called"})
    assert review.status_code == 200, review.text
    assert review.json() == {
        "entity": "warranty_claim", "key": "A-1", "transition": "review",
        "workflow": "claim", "from_state": "submitted", "to_state": "in_review", "version": 2,
        "actor": "portal", "reason": "dealer called", "deliveries": 1,
    }  # fmt: skip
    approve = served.post("A-1", "approve", {"fields": {"approved_amount": "99.90"}})
    assert (approve.status_code, approve.json()["deliveries"]) == (200, 4)
    log = served.get("/api/v1/records/warranty_claim/A-1/transitions")
    assert log.status_code == 200
    assert [
        (t["version"], t["from_state"], t["to_state"], t["transition"], t["actor_kind"],
         t["actor"], t["reason"])
        for t in log.json()
    ] == [
        (1, None, "submitted", None, "flow", "claims-vms", None),
        (2, "submitted", "in_review", "review", "client", "portal", "dealer called"),
        (3, "in_review", "approved", "approve", "client", "portal", None),
    ]  # fmt: skip
    assert all(t["at"] for t in log.json())
    record = served.get("/api/v1/records/warranty_claim/A-1").json()
    assert record["payload"]["status"] == "approved"
    assert record["transitions"] == log.json()  # shown with the record's lineage


def test_hostile_input_gets_a_clear_4xx_naming_state_and_allowed(served: Served) -> None:
    served.claim("H-1")

    def refused(status: int, code: str, name: str, body: Any = None, key: str = "H-1") -> str:
        answer = served.post(key, name, body)
        assert answer.status_code == status, answer.text
        found = answer.json()
        assert found["error"]["code"] == code
        if key == "H-1":
            assert (found["state"], found["version"]) == ("submitted", 1)
            assert found["allowed"] == ["review", "reject"]
        message: str = found["error"]["message"]
        return message

    assert refused(404, "unknown_transition", "aprove").startswith(
        "warranty_claim has no transition 'aprove'; did you mean 'approve'?"
    )
    assert refused(409, "illegal_transition", "approve") == (
        "'approve' cannot fire from submitted; allowed: review, reject"
    )
    assert refused(422, "reason_required", "reject", {"reason": ""}) == "'reject' needs a reason"
    card = refused(422, "card_number", "reject", {"reason": f"refund to {CARD}"})
    assert "card number" in card and "4111" not in card
    assert refused(422, "invalid_fields", "review", {"fields": {"status": "closed"}}) == (
        "'status' changes only by a transition, not as a field"
    )
    assert refused(404, "not_found", "review", key="H-404") == (
        "no warranty_claim record with key 'H-404'"
    )
    answer = served.post("H-1", "review", {"reason": "x", "actor": "someone else"})
    assert answer.status_code == 422  # unknown body members are refused, not ignored
    with served.hub.client(headers={"X-API-Key": served.writer}) as client:
        garbled = client.post(
            "/api/v1/records/warranty_claim/H-1/transitions/review",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert garbled.status_code in (400, 422) and "error" in garbled.json()
        anonymous = client.post(
            "/api/v1/records/warranty_claim/H-1/transitions/review", headers={"X-API-Key": ""}
        )
        assert anonymous.status_code == 401
    with served.hub.client(headers={"X-API-Key": served.reader}) as client:
        read_only = client.post("/api/v1/records/warranty_claim/H-1/transitions/review")
        assert read_only.status_code == 403
    assert served.get("/api/v1/records/warranty_claim/H-1").json()["version"] == 1
    assert served.hub.process.poll() is None
    assert "Traceback" not in served.hub.output()


def test_racing_transitions_one_wins_the_other_gets_409_with_the_state(served: Served) -> None:
    keys = [f"R-{i}" for i in range(8)]
    for key in keys:
        served.claim(key, status="submitted")
        assert served.post(key, "review").status_code == 200
    bodies = {"approve": {"fields": {"approved_amount": "10"}}, "reject": {"reason": "late"}}
    jobs = [(key, name) for key in keys for name in bodies]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(lambda job: served.post(job[0], job[1], bodies[job[1]]), jobs))
    for key in keys:
        mine = [a for (k, _), a in zip(jobs, answers, strict=True) if k == key]
        assert sorted(a.status_code for a in mine) == [200, 409], [a.text for a in mine]
        won = next(a.json() for a in mine if a.status_code == 200)
        lost = next(a.json() for a in mine if a.status_code == 409)
        assert lost["state"] == won["to_state"] and lost["version"] == 3
        assert won["to_state"] in lost["error"]["message"]
        log = served.get(f"/api/v1/records/warranty_claim/{key}/transitions").json()
        assert [t["transition"] for t in log] == [None, "review", won["transition"]]


def test_an_idempotency_key_replays_the_first_answer(served: Served) -> None:
    served.claim("I-1")
    first = served.post("I-1", "review", {}, **{"Idempotency-Key": "retry-1"})
    again = served.post("I-1", "review", {}, **{"Idempotency-Key": "retry-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert {**again.json(), "deliveries": 1} == first.json()
    log = served.get("/api/v1/records/warranty_claim/I-1/transitions").json()
    assert len(log) == 2


def test_the_command_line_fires_and_shows_the_log(served: Served) -> None:
    served.claim("C-1")
    done = served.cli("transition", "warranty_claim", "C-1", "reject", "--reason", "no receipt",
                      "--actor", "anna")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warranty_claim C-1: reject submitted → rejected (version 2)" in done.stdout
    refused = served.cli("transition", "warranty_claim", "C-1", "review", "--actor", "anna")
    assert refused.returncode == 1
    assert "'review' cannot fire from rejected; allowed: close" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = served.cli("transition", "warranty_claim", "C-1", "close", "--field", "approver")
    assert bad.returncode == 2 and "--field 'approver': write NAME=VALUE" in bad.stderr
    shown = served.cli("transitions", "warranty_claim", "C-1")
    assert shown.returncode == 0, shown.stderr
    assert "user anna" in shown.stdout and "no receipt" in shown.stdout
    assert "flow claims-vms" in shown.stdout
    log = served.get("/api/v1/records/warranty_claim/C-1/transitions").json()
    assert [(t["actor_kind"], t["actor"], t["reason"]) for t in log][-1] == (
        "user", "anna", "no receipt",
    )  # fmt: skip
    record = served.cli("records", "warranty_claim", "--key", "C-1")
    assert record.returncode == 0, record.stderr
    assert "status changes (transition log)" in record.stdout and "no receipt" in record.stdout
    missing = served.cli("transitions", "warranty_claim", "C-404")
    assert missing.returncode == 1 and "no warranty_claim record with key 'C-404'" in missing.stderr
