"""A pause that pauses (issue 14): a paused flow is neither scheduled, synced, fed by events nor
delivered, in a served ``erpbridge run``, until it is resumed; then everything goes on.

Before: the API's switch was read only by the API and the events code; the scheduler went on
firing a "disabled" flow and the worker delivered its OUT deliveries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub, wait_for
from hubprocess import run_cli as cli

CONFIG = """
channels:
  shop: {system: platform}
  inbox: {system: folder, options: {path: inbox}}
  erp: {system: folder, options: {path: erp}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping: {code: {from: id, required: true}, name: name}
  - name: files-in
    channel: inbox
    entity: customer
    direction: in
    trigger: {interval: 1s}
    source: {pattern: "*.csv"}
    mapping: {code: id, name: name}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}.json"}
    mapping: {Kunde: code, Name: name}
"""

#: Scheduler ticks (1 s interval) the test waits to see that nothing happens.
QUIET_S = 3.5


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedHub, httpx.Client]]:
    root = tmp_path / "hub"
    (root / "inbox").mkdir(parents=True)
    (root / "erp").mkdir()
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "ops", {"admin", "events"})
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)
    with (
        serve_hub(root, CONFIG, command="run", args=("--interval", "0.2")) as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        yield hub, http


def runs_of(http: httpx.Client, flow: str) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/runs", params={"flow": flow})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def deliveries(http: httpx.Client) -> list[dict[str, Any]]:
    answer = http.get("/api/v1/deliveries", params={"flow": "customers-out"})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def delivered(root: Path) -> set[str]:
    return {p.name for p in (root / "erp").glob("*.json")}


def test_a_paused_flow_is_neither_scheduled_synced_fed_nor_delivered_until_resumed(
    served: tuple[ServedHub, httpx.Client],
) -> None:
    hub, http = served
    root = hub.root
    (root / "inbox" / "a.csv").write_text("id,name\nA-1,Alpha\n", encoding="utf-8")
    wait_for(lambda: delivered(root) == {"A-1.json"}, "A-1 delivered")

    # the OUT flow paused from the command line: a new record is queued, not delivered
    paused = cli(root, "flows", "pause", "customers-out")
    assert paused.returncode == 0, paused.stderr
    event = http.post("/api/v1/events/customers-in", json={"id": "B-1", "name": "Beta"})
    assert event.status_code == 202, event.text
    wait_for(lambda: any(d["key"] == "B-1" for d in deliveries(http)), "B-1 queued")
    time.sleep(QUIET_S)
    (queued,) = [d for d in deliveries(http) if d["key"] == "B-1"]
    assert (queued["state"], queued["attempts"], queued["flow_paused"]) == ("pending", 0, True)
    assert delivered(root) == {"A-1.json"}
    listed = cli(root, "deliveries", "--flow", "customers-out")
    assert "pending (flow paused)" in listed.stdout
    flows = cli(root, "flows", "list").stdout
    assert "customers-out" in flows and "paused" in flows

    # the scheduled IN flow and the event flow paused through the API
    for flow in ("files-in", "customers-in"):
        answer = http.post(f"/api/v1/flows/{flow}/pause")
        assert answer.status_code == 200, answer.text
        assert answer.json()["enabled"] is False and answer.json()["switched_by"] == "ops"
    runs_before = len(runs_of(http, "files-in"))
    (root / "inbox" / "c.csv").write_text("id,name\nC-1,Gamma\n", encoding="utf-8")
    time.sleep(QUIET_S)
    assert len(runs_of(http, "files-in")) == runs_before  # no fire ran it
    assert (root / "inbox" / "c.csv").exists()
    refused = http.post("/api/v1/events/customers-in", json={"id": "D-1", "name": "Delta"})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "flow_paused"
    assert "paused (by ops since" in error["message"] and "flows resume" in error["message"]
    run_now = http.post("/api/v1/flows/files-in/run")
    assert run_now.status_code == 409 and run_now.json()["error"]["code"] == "flow_paused"
    synced = cli(root, "sync", "files-in")
    assert synced.returncode == 75, synced.stdout + synced.stderr
    assert "flow 'files-in' is paused" in synced.stderr
    assert len(runs_of(http, "files-in")) == runs_before

    # resumed: the waiting file is read at the next fire, and both waiting deliveries go out
    assert http.post("/api/v1/flows/files-in/resume").status_code == 200
    assert http.post("/api/v1/flows/customers-in/resume").status_code == 200
    resumed = cli(root, "flows", "resume", "customers-out")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(
        lambda: delivered(root) == {"A-1.json", "B-1.json", "C-1.json"}, "B-1 and C-1 delivered"
    )
    assert not (root / "inbox" / "c.csv").exists()
    assert all(d["state"] == "delivered" and not d["flow_paused"] for d in deliveries(http))

    audit = http.get("/api/v1/audit", params={"limit": 20}).json()
    actions = [(a["action"], a["target"], a["actor"].split(":")[0]) for a in reversed(audit)]
    assert actions == [
        ("flow.pause", "customers-out", "cli"),
        ("flow.pause", "files-in", "ops"),
        ("flow.pause", "customers-in", "ops"),
        ("flow.resume", "files-in", "ops"),
        ("flow.resume", "customers-in", "ops"),
        ("flow.resume", "customers-out", "cli"),
    ]


def test_pausing_an_unknown_flow_is_refused_by_name(
    served: tuple[ServedHub, httpx.Client],
) -> None:
    hub, http = served
    answer = http.post("/api/v1/flows/nowhere/pause")
    assert answer.status_code == 404 and "no flow named 'nowhere'" in answer.text
    done = cli(hub.root, "flows", "pause", "customers-ou")
    assert done.returncode == 2
    assert "no flow named 'customers-ou'" in done.stderr and "customers-out" in done.stderr
