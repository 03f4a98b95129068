"""Backfill and replay from a flow's page (issue 21), against ``erpbridge run`` served as a
subprocess: a folder target connected to a hub that already holds customers gets them all after
an operator confirms the count the page showed, the run's progress follows the deliveries to the
end; a replay of a time range likewise. Over HTTP: a viewer, a missing CSRF token, an IN flow,
a bad time or filter are refused with the reason, nothing queued."""

from __future__ import annotations

import html
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from erpbridge.store import open_store
from erpbridge.store.tables import deliveries
from hubprocess import ServedHub
from ui.backoffice import CONFIG, eventually, open_page, served_backoffice, signed_in

ARCHIVE = """  - name: archive-out
    channel: archive
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}.json"}
    mapping:
      Kunde: code
      Name: name
"""
ARCHIVE_CHANNEL = """  archive:
    system: folder
    description: "The new archive, connected after the customers arrived"
    options: {path: archive}
"""


def _with_archive(config: str) -> str:
    config = config.replace("flows:\n", ARCHIVE_CHANNEL + "flows:\n", 1)
    return config + ARCHIVE


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    root = tmp_path_factory.mktemp("fills") / "hub"
    with served_backoffice(root, folders=("inbox", "erp", "desk", "archive")) as served:
        rows = "".join(f"C{n};Customer {n}\n" for n in range(1, 6))
        (root / "inbox" / "customers.csv").write_text("code;name\n" + rows, encoding="utf-8")
        eventually(lambda: len(list((root / "erp").glob("*.json"))) == 5, what="5 delivered")
        # the archive is connected now: the hub holds 5 customers it never sent there
        (root / "erpbridge.yaml").write_text(_with_archive(CONFIG), encoding="utf-8")
        served.process.send_signal(signal.SIGHUP)
        with signed_in(served, "viewer") as (http, _):
            eventually(
                lambda: http.get("/ui/flows/archive-out").status_code == 200,
                what="archive-out configured after the reload",
            )
        yield served


def _deliveries(hub: ServedHub, flow: str) -> int:
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(deliveries).where(deliveries.c.flow == flow)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_operator_backfills_a_new_target_after_seeing_the_count(
    hub: ServedHub, browser: Browser, shots: Path
) -> None:
    page = open_page(browser, hub, "operator")
    page.goto("/ui/flows/archive-out")
    page.screenshot(path=str(shots / "flow-backfill.png"), full_page=True)
    page.click("#backfill")
    expect(page.locator("h1")).to_have_text("Backfill flow archive-out?")
    expect(page.locator("#fill-count")).to_have_text("5")
    expect(page.locator("#fill-preview")).to_contain_text("will send 5 records")
    page.screenshot(path=str(shots / "backfill-confirm.png"), full_page=True)
    assert _deliveries(hub, "archive-out") == 0  # the preview queued nothing
    page.click("#fill-start")
    expect(page.locator(".notice")).to_contain_text("backfill of archive-out started")
    expect(page.locator("#fill-progress")).to_have_attribute("data-live", "no", timeout=60_000)
    expect(page.locator("#fill-delivered")).to_have_text("5")
    expect(page.locator("#fill-queued")).to_have_text("5")
    page.screenshot(path=str(shots / "backfill-progress.png"), full_page=True)
    run_id = page.url.split("/ui/runs/")[1].split("?")[0]
    partial = page.request.get(f"{hub.url}/ui/runs/{run_id}/progress")  # what htmx refreshes
    assert partial.status == 200 and 'id="fill-delivered">5<' in partial.text()
    assert page.request.get(f"{hub.url}/ui/runs/999999/progress").status == 404
    files = sorted(p.name for p in (hub.root / "archive").glob("*.json"))
    assert files == [f"C{n}.json" for n in range(1, 6)]
    assert json.loads((hub.root / "archive" / "C3.json").read_text())["Name"] == "Customer 3"
    # a second backfill has nothing left to send, and says so without a button
    page.goto("/ui/flows/archive-out")
    page.click("#backfill")
    expect(page.locator("#fill-count")).to_contain_text("Nothing to send")
    expect(page.locator("#fill-start")).to_have_count(0)
    page.close()


def test_operator_replays_a_time_range(hub: ServedHub, browser: Browser) -> None:
    page = open_page(browser, hub, "operator")
    page.goto("/ui/flows/customers-out")
    start = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.fill("#replay-form input[name=from]", start)
    before = _deliveries(hub, "customers-out")
    page.click("#replay")
    expect(page.locator("h1")).to_have_text("Replay flow customers-out?")
    count = int(page.locator("#fill-preview").get_attribute("data-count") or "0")
    assert count >= 5, count  # every version written in the last hour
    page.click("#fill-start")
    expect(page.locator("#fill-progress")).to_have_attribute("data-live", "no", timeout=60_000)
    expect(page.locator("#fill-queued")).to_have_text(str(count))
    assert _deliveries(hub, "customers-out") == before + count
    page.close()


def test_fill_requests_are_checked_on_the_server(hub: ServedHub) -> None:
    before = _deliveries(hub, "archive-out"), _deliveries(hub, "customers-out")
    form = {"where": "", "changed_since": "", "confirm": "yes"}
    with signed_in(hub, "viewer") as (http, token):
        answer = http.post("/ui/flows/archive-out/backfill", data={**form, "csrf": token})
        assert answer.status_code == 403 and "needs the operator role" in answer.text
    with signed_in(hub, "operator") as (http, token):
        answer = http.post("/ui/flows/archive-out/backfill", data=form)
        assert answer.status_code == 403 and "CSRF token" in answer.text
        cases = [
            ("customers-in/backfill", {}, 409, "is an IN flow"),
            ("nowhere/backfill", {}, 404, "no flow named"),
            ("archive-out/backfill", {"changed_since": "yesterday"}, 422, "changed_since"),
            ("archive-out/backfill", {"where": "country"}, 422, "line 1: 'country' is not"),
            ("archive-out/backfill", {"where": "nosuchfield=1"}, 422, "nosuchfield"),
            ("archive-out/replay", {"from": ""}, 422, "from: the start of the range"),
            ("archive-out/replay", {"from": "2026-12-02", "to": "2026-12-01"}, 422, "after"),
        ]
        for path, extra, status, fragment in cases:
            answer = http.post(f"/ui/flows/{path}", data={**form, **extra, "csrf": token})
            assert answer.status_code == status, (path, extra, answer.text)
            assert fragment in html.unescape(answer.text), (path, extra, answer.text)
    assert (_deliveries(hub, "archive-out"), _deliveries(hub, "customers-out")) == before
