"""``erpbridge backfill``, ``replay`` and ``records --as-of`` as a user runs them, and the same
through a served ``erpbridge run``'s API: what they do, and hostile input answered with the
place and the cause (exit 2 / 4xx), never a traceback, nothing queued."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub

CONFIG = """
channels:
  shop: {system: platform}
  erp: {system: folder, options: {path: erp}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping: {code: {from: id, required: true}, name: name, currency: currency}
"""

OUT_FLOW = """
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}.json"}
    mapping: {Kunde: code, Name: name}
"""


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": "", "COLUMNS": "300"},
        check=False,
    )


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def stamp() -> str:
    time.sleep(0.05)
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    return moment


@contextmanager
def hub_with_history(tmp_path: Path, out_flow: str) -> Iterator[tuple[ServedHub, httpx.Client]]:
    """A served hub holding three customers (C1 at v3) before its OUT flow exists; then the
    flow is added and the hub started again as ``erpbridge run``."""
    root = tmp_path / "hub"
    (root / "erp").mkdir(parents=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "ops", {"admin", "events"})
    engine.dispose()
    moments: dict[str, str] = {}
    with serve_hub(root, CONFIG) as hub, hub.client(headers={"X-API-Key": key}) as http:
        moments["before"] = stamp()
        for body in (
            {"id": "C1", "name": "Anna", "currency": "EUR"},
            {"id": "C2", "name": "Bob", "currency": "USD"},
            {"id": "C3", "name": "Cleo", "currency": "EUR"},
        ):
            assert http.post("/api/v1/events/customers-in", json=body).status_code == 202
        moments["created"] = stamp()
        body = {"id": "C1", "name": "Anna Schmidt", "currency": "EUR"}
        assert http.post("/api/v1/events/customers-in", json=body).status_code == 202
        moments["renamed"] = stamp()
        body = {"id": "C1", "name": "Anna Schmidt", "currency": "CHF"}
        assert http.post("/api/v1/events/customers-in", json=body).status_code == 202
        moments["moved"] = stamp()
    with (
        serve_hub(root, CONFIG + out_flow, command="run", args=("--interval", "0.2")) as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        hub.extra.update(moments)
        yield hub, http


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedHub, httpx.Client]]:
    with hub_with_history(tmp_path, OUT_FLOW) as pair:
        yield pair


def test_backfill_on_create_fills_a_new_flow_once_and_says_so(tmp_path: Path) -> None:
    flow = OUT_FLOW + "    backfill: on_create\n"
    with hub_with_history(tmp_path, flow) as (hub, http):
        wait_for(lambda: len(delivered(hub.root)) == 3, "the new flow filled")
        assert delivered(hub.root) == {"C1": "Anna Schmidt", "C2": "Bob", "C3": "Cleo"}
        wait_for(lambda: "backfill run" in hub.output(), "the announcement")
        assert "flow customers-out is new (backfill: on_create)" in hub.output()
        runs = http.get("/api/v1/runs", params={"flow": "customers-out"}).json()
        assert [(r["mode"], r["status"], r["created"]) for r in runs] == [
            ("backfill", "succeeded", 3)
        ]
    # started again: the flow is not new any more, nothing is queued twice
    config = (tmp_path / "hub" / "erpbridge.yaml").read_text(encoding="utf-8")
    key = create_client(open_store(f"sqlite:///{tmp_path / 'hub' / 'erpbridge.db'}"), "again",
                        {"read"})[1]  # fmt: skip
    with (
        serve_hub(tmp_path / "hub", config, command="run") as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        time.sleep(2)
        runs = http.get("/api/v1/runs", params={"flow": "customers-out"}).json()
        assert len(runs) == 1
        assert "is new (backfill: on_create)" not in hub.output()


def test_backfill_on_an_in_flow_is_a_configuration_problem(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(
        CONFIG.replace("trigger: immediate", "trigger: immediate\n    backfill: on_create")
    )
    found = subprocess.run(
        [sys.executable, "-m", "erpbridge", "check", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert found.returncode == 2
    assert "flows[0].backfill: an IN flow reads from its channel" in found.stdout + found.stderr


def delivered(root: Path) -> dict[str, str]:
    import orjson

    return {p.stem: orjson.loads(p.read_bytes())["Name"] for p in (root / "erp").glob("*.json")}


def test_backfill_replay_and_as_of_through_the_command_line(
    served: tuple[ServedHub, httpx.Client],
) -> None:
    hub, _ = served
    root = hub.root
    dry = cli(root, "backfill", "customers-out", "--where", "currency=EUR", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "1 would be queued" in dry.stdout  # C3 (C1 is CHF now)
    done = cli(root, "backfill", "customers-out", "--wait")
    assert done.returncode == 0, done.stderr
    assert "3 record(s) looked at, 3 queued" in done.stdout
    assert "3 delivered" in done.stdout
    assert delivered(root) == {"C1": "Anna Schmidt", "C2": "Bob", "C3": "Cleo"}
    runs = cli(root, "runs", "--flow", "customers-out")
    assert "backfill" in runs.stdout and "succeeded" in runs.stdout

    replayed = cli(
        root, "replay", "customers-out", "--from", hub.extra["created"], "--to",
        hub.extra["moved"], "--wait",
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert "2 version(s) looked at, 2 queued" in replayed.stdout  # C1 v2 and v3

    then = cli(root, "records", "customer", "--as-of", hub.extra["created"], "--key", "C1")
    assert then.returncode == 0, then.stderr
    assert "v1 as of" in then.stdout and '"Anna"' in then.stdout
    listed = cli(root, "records", "customer", "--as-of", hub.extra["renamed"])
    assert "Anna Schmidt" in listed.stdout and "C3" in listed.stdout
    diff = cli(
        root, "records", "customer", "--diff-from", hub.extra["created"],
        "--as-of", hub.extra["moved"],
    )  # fmt: skip
    assert diff.returncode == 0, diff.stderr
    assert "currency" in diff.stdout and '"CHF"' in diff.stdout and "C2" not in diff.stdout
    before = cli(root, "records", "customer", "--as-of", hub.extra["before"], "--key", "C1")
    assert before.returncode == 1 and "not yet created" in before.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backfill", "nope"), "no flow named 'nope'"),
        (("backfill", "customers-in"), "'customers-in' is an IN flow"),
        (
            ("backfill", "customers-out", "--changed-since", "last week"),
            "--changed-since 'last week': not a time",
        ),
        (("backfill", "customers-out", "--where", "colour=red"), "customer has no field 'colour'"),
        (("backfill", "customers-out", "--where", "name"), "--where 'name': write FIELD=VALUE"),
        (
            ("replay", "customers-out", "--from", "2026-12-07", "--to", "2026-12-01"),
            "is after --to",
        ),
        (("replay", "customers-out", "--from", "2026-13-01"), "--from '2026-13-01': not a time"),
        (("records", "customer", "--as-of", "soon"), "--as-of 'soon': not a time"),
    ],
)
def test_hostile_command_lines_say_what_is_wrong(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "erp").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG + OUT_FLOW, encoding="utf-8")
    found = cli(tmp_path, *args)
    assert found.returncode == 2, found.stdout + found.stderr
    assert message in found.stderr
    assert "Traceback" not in found.stderr


def test_backfill_replay_and_as_of_through_the_served_api(
    served: tuple[ServedHub, httpx.Client],
) -> None:
    hub, http = served

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return http.post(f"/api/v1/flows/{path}", json=body)

    dry = post("customers-out/backfill", {"where": {"currency": "EUR"}, "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["queued"], dry.json()["status"]) == (1, "succeeded")
    started = post("customers-out/backfill", {})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    def progress() -> dict[str, Any]:
        answer = http.get(f"/api/v1/runs/{run_id}/progress")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    wait_for(lambda: progress()["deliveries"] == {"delivered": 3}, "the backfill delivered")
    assert (progress()["mode"], progress()["status"], progress()["queued"]) == (
        "backfill", "succeeded", 3,
    )  # fmt: skip
    assert delivered(hub.root) == {"C1": "Anna Schmidt", "C2": "Bob", "C3": "Cleo"}

    replay = post("customers-out/replay", {"from": hub.extra["created"], "to": hub.extra["moved"]})
    assert replay.status_code == 202, replay.text

    then = http.get("/api/v1/records/customer/C1", params={"as_of": hub.extra["renamed"]})
    assert then.status_code == 200, then.text
    assert (then.json()["version"], then.json()["payload"]["name"]) == (2, "Anna Schmidt")
    assert [v["version"] for v in then.json()["versions"]] == [1, 2]
    diff = http.get(
        "/api/v1/records/customer/C1/diff",
        params={"from": hub.extra["created"], "to": hub.extra["moved"]},
    )
    assert diff.status_code == 200, diff.text
    assert diff.json()["changes"] == [
        {"path": "currency", "before": "EUR", "after": "CHF"},
        {"path": "name", "before": "Anna", "after": "Anna Schmidt"},
    ]

    before = hub.extra["before"]
    hostile = [
        (post("nope/backfill", {}), 404, "not_found"),
        (post("customers-in/backfill", {}), 409, "not_an_out_flow"),
        (post("customers-out/backfill", {"changed_since": "never"}), 422, "bad_time"),
        (post("customers-out/backfill", {"where": {"colour": "red"}}), 422, "bad_filter"),
        (
            post("customers-out/replay", {"from": "2026-12-07", "to": "2026-12-01"}),
            422,
            "bad_range",
        ),
        (post("customers-out/replay", {"to": "2026-12-01"}), 422, None),
        (http.get("/api/v1/records/customer/C1", params={"as_of": "x"}), 422, "bad_time"),
        (http.get("/api/v1/records/customer/C1", params={"as_of": before}), 404, "not_found"),
        (http.get("/api/v1/runs/99999/progress"), 404, "not_found"),
    ]
    for answer, status, code in hostile:
        assert answer.status_code == status, answer.text
        if code is not None:
            assert answer.json()["error"]["code"] == code, answer.text
    assert "Traceback" not in hub.output()
