"""The back office in a real browser (Playwright driving Debian's Chromium) against ``erpbridge
run`` as a subprocess with real data: sign in, watch a flow turn red when its target folder
becomes unusable and green when it recovers, retry a dead delivery with its button. Screenshots
of each page land in ``ERPBRIDGE_UI_SCREENSHOTS`` (else the test's temporary folder)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from erpbridge.store import open_store
from erpbridge.store.tables import runs
from hubprocess import ServedHub
from ui.backoffice import eventually, open_page, served_backoffice


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHub]:
    with served_backoffice(tmp_path_factory.mktemp("browser") / "hub") as served:
        yield served


def _page(browser: Browser, hub: ServedHub, user: str) -> Page:
    return open_page(browser, hub, user)


def test_login_page(browser: Browser, hub: ServedHub, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900}, base_url=hub.url)
    page.goto("/ui/login")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("button.primary")
    expect(page.locator(".error")).to_contain_text("Wrong user name or password")
    page.screenshot(path=shots / "login.png")
    page.close()


def test_flow_turns_red_and_green_and_dead_delivery_is_retried(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = _page(browser, hub, "operator")
    row = page.locator('tr[data-flow="customers-out"]')
    expect(row).to_have_class("row-idle")
    # The target folder becomes unusable (a file where the folder was: root ignores modes).
    target = hub.root / "erp"
    shutil.rmtree(target)
    target.write_text("not a folder", encoding="utf-8")
    (hub.root / "inbox" / "customers_1.csv").write_text(
        "code;name\nC1;Alice\nC2;Bob\n", encoding="utf-8"
    )
    # The dashboard refreshes itself: no reload.
    expect(row).to_have_class("row-failing", timeout=30_000)
    expect(row.locator(".badge")).to_have_text("failing")
    page.screenshot(path=shots / "dashboard-failing.png", full_page=True)

    target.unlink()
    target.mkdir()
    page.click("nav >> text=Deliveries")
    page.select_option("select[name=state]", "dead")
    page.click("form.filters button")
    page.screenshot(path=shots / "deliveries.png", full_page=True)
    dead = page.locator("#deliveries tbody tr.row-dead")
    expect(dead).to_have_count(2, timeout=30_000)
    dead.first.locator("a").first.click()
    expect(page.locator("#attempts tbody tr")).to_have_count(2)
    page.screenshot(path=shots / "delivery.png", full_page=True)
    page.click("button#retry")
    expect(page.locator(".notice")).to_contain_text("queued again")
    for _ in range(60):  # the delivery page does not refresh itself: reload until it went out
        page.reload()
        if page.locator(".head .badge").inner_text() == "delivered":
            break
        page.wait_for_timeout(500)
    expect(page.locator(".head .badge")).to_have_text("delivered")
    expect(page.locator("#attempts tbody tr")).to_have_count(3)
    # The other dead one, with the bulk button.
    page.goto("/ui/deliveries?state=dead")
    page.click("#retry-dead button")
    expect(page.locator(".notice")).to_contain_text("1 dead deliveries queued again")
    eventually(lambda: len(list(target.glob("*.json"))) == 2, what="both delivered")

    page.goto("/ui/")
    expect(row).to_have_class("row-idle", timeout=30_000)
    page.screenshot(path=shots / "dashboard.png", full_page=True)
    page.goto("/ui/runs")
    page.screenshot(path=shots / "runs.png", full_page=True)
    page.locator("table.grid tbody a").first.click()
    page.screenshot(path=shots / "run.png", full_page=True)
    page.goto("/ui/records/customer/C1")
    page.screenshot(path=shots / "record.png", full_page=True)
    page.close()


def _runs_of(hub: ServedHub, flow: str) -> int:
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(runs).where(runs.c.flow == flow)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_pause_stops_scheduler_and_worker_and_run_now_is_followed(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = _page(browser, hub, "operator")
    page.click("nav >> text=Flows")
    page.locator('tr[data-flow="customers-out"] button', has_text="Pause").click()
    expect(page.locator(".notice")).to_contain_text("flow customers-out paused")
    page.goto("/ui/flows/customers-in")
    page.click("button#pause")
    expect(page.locator(".head .badge")).to_have_text("paused")
    expect(page.locator("#switch")).to_contain_text("paused by operator")

    # The scheduler lets the 1 s fire times pass: the file stays, no run is written.
    before = _runs_of(hub, "customers-in")
    dropped = hub.root / "inbox" / "customers_3.csv"
    dropped.write_text("code;name\nC3;Carol\n", encoding="utf-8")
    time.sleep(3)
    assert _runs_of(hub, "customers-in") == before
    assert dropped.exists()
    page.goto("/ui/flows")
    expect(page.locator("tr.row-paused")).to_have_count(2)
    page.screenshot(path=shots / "flows.png", full_page=True)

    # Resumed, the IN flow reads the file; the OUT flow, still paused, holds its delivery.
    page.goto("/ui/flows/customers-in")
    page.click("button#resume")
    expect(page.locator(".head .badge")).to_have_text("enabled")
    eventually(lambda: not dropped.exists(), what="customers_3.csv read after the resume")
    time.sleep(2)
    assert not (hub.root / "erp" / "C3.json").exists()
    page.goto("/ui/flows/customers-out")
    expect(page.locator("main")).to_contain_text("waiting: the flow is paused")
    page.screenshot(path=shots / "flow-paused.png", full_page=True)
    page.click("button#resume")
    eventually(lambda: (hub.root / "erp" / "C3.json").exists(), what="C3 delivered after resume")

    # Run now: the page follows the run it started, without a reload.
    desk = hub.root / "desk" / "customers_4.csv"
    desk.write_text("code;name\nC4;Dave\nC1;Alice Desk\n", encoding="utf-8")
    page.goto("/ui/flows/customers-desk")
    expect(page.locator("#recent-runs tbody")).to_contain_text("No runs match.")
    # A dry run first: what would change, field by field; nothing written, the file stays.
    page.click("button#dry-run")
    expect(page.locator("h1")).to_contain_text("Dry run of customers-desk")
    new = page.locator('.change[data-key="C4"]')
    expect(new).to_contain_text("new record")
    expect(new.locator("tbody")).to_contain_text('"Dave"')  # code, name (and defaults)
    changed = page.locator('.change[data-key="C1"]')
    expect(changed).to_contain_text("update of version")
    expect(changed.locator("tbody tr")).to_have_count(1)
    expect(changed.locator("tbody tr")).to_contain_text('"Alice"')
    expect(changed.locator("tbody tr")).to_contain_text('"Alice Desk"')
    page.screenshot(path=shots / "dry-run.png", full_page=True)
    assert desk.exists()
    page.goto("/ui/flows/customers-desk")
    expect(page.locator("#recent-runs tbody tr")).to_have_count(1)  # the dry run's, marked
    expect(page.locator("#recent-runs .tag")).to_have_text("dry run")
    page.click("button#run-now")
    expect(page.locator(".notice")).to_contain_text("flow customers-desk started")
    first = page.locator("#recent-runs tbody tr").first
    expect(first.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(first.locator("td").nth(7)).to_have_text("1")  # created
    expect(page.locator("#recent-runs [data-live]")).to_have_attribute("data-live", "no")
    page.screenshot(path=shots / "flow.png", full_page=True)
    page.close()


def test_admin_resets_a_cursor(browser: Browser, hub: ServedHub, shots: Path) -> None:
    page = _page(browser, hub, "admin")
    page.goto("/ui/flows/customers-in")
    expect(page.locator("#cursor")).to_contain_text("Cursor")
    page.fill("#cursor-reset input[name=to]", '"2026-01-01T00:00:00"')
    page.click("#cursor-reset button")
    expect(page.locator(".notice")).to_contain_text("cursor of customers-in reset to 2026-01-01")
    expect(page.locator("#cursor")).to_contain_text("2026-01-01T00:00:00")
    page.screenshot(path=shots / "flow-cursor.png", full_page=True)
    page.fill("#cursor-reset input[name=to]", "")
    page.click("#cursor-reset button")
    expect(page.locator(".notice")).to_contain_text("reset to nothing (the next run reads")
    page.close()


def test_channel_page_tests_the_connection_and_keeps_the_history(
    browser: Browser, hub: ServedHub, shots: Path
) -> None:
    page = _page(browser, hub, "admin")
    page.click("nav >> text=Channels")
    expect(page.locator('#channels tr[data-channel="erp"]')).to_contain_text("folder")
    page.screenshot(path=shots / "channels.png", full_page=True)
    page.goto("/ui/channels/erp")
    page.click("button#test")
    expect(page.locator(".notice")).to_contain_text("channel erp: connection ok")
    target = hub.root / "erp"
    moved = hub.root / "erp-away"
    target.rename(moved)
    try:
        page.click("button#test")
        expect(page.locator(".notice")).to_contain_text("channel erp failed: ")
    finally:
        moved.rename(target)
    expect(page.locator("#history tbody tr")).to_have_count(2)
    expect(page.locator("#history tbody tr").first).to_contain_text("failed")
    page.screenshot(path=shots / "channel.png", full_page=True)
    page.click("nav >> text=Audit")
    expect(page.locator('#audit tr[data-action="channel.test"]')).to_have_count(2)
    expect(page.locator('#audit tr[data-action="flow.pause"]').first).to_contain_text("operator")
    page.screenshot(path=shots / "audit.png", full_page=True)
    page.close()
