"""A served hub for the back office's tests: ``erpbridge run`` with a folder IN flow, a folder OUT
flow, users of every role, and helpers to sign in over HTTP (httpx) or in Chromium (Playwright).

Chromium is Debian's (``scripts/system-packages.sh`` installs it; Playwright's own browser
downloads are not reachable); ``ERPBRIDGE_CHROMIUM`` names another executable. Screenshots go to
``ERPBRIDGE_UI_SCREENSHOTS`` when set (``docs/screenshots`` for the README), else to the test's
temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from erpbridge.store import open_store
from erpbridge.store.users import add_user
from hubprocess import ServedHub, serve_hub

__all__ = [
    "CONFIG",
    "PASSWORD",
    "chromium",
    "chromium_path",
    "eventually",
    "open_page",
    "screenshots",
    "served_backoffice",
    "signed_in",
]

PASSWORD = "correct-horse-battery"

CONFIG = """
channels:
  drop:
    system: folder
    description: "ERP export folder (customers as CSV)"
    options: {path: inbox, min_age_seconds: 0}
  erp:
    system: folder
    description: "Target system's import folder"
    options: {path: erp}
  desk:
    system: folder
    description: "Files dropped by hand, read when an operator says so"
    options: {path: desk, min_age_seconds: 0}
flows:
  - name: customers-in
    channel: drop
    entity: customer
    direction: in
    trigger: {interval: 1s}
    source: {pattern: "*.csv", format: csv, delimiter: ";"}
    key: code
    mapping:
      code: {from: code, required: true}
      name: {from: name, required: true}
  - name: customers-desk
    channel: desk
    entity: customer
    direction: in
    trigger: manual
    source: {pattern: "*.csv", format: csv, delimiter: ";"}
    key: code
    mapping:
      code: {from: code, required: true}
      name: {from: name, required: true}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    retry: {max_attempts: 2, backoff_s: 0.2, max_backoff_s: 0.5}
    target: {format: json, name: "{key}.json"}
    mapping:
      Kunde: code
      Name: name
"""


@contextmanager
def served_backoffice(
    root: Path,
    config: str = CONFIG,
    folders: tuple[str, ...] = ("inbox", "erp", "desk"),
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServedHub]:
    """``erpbridge run`` on ``root`` (with ``folders`` made in it) and users ``viewer``,
    ``operator``, ``admin`` (one role each) and ``erp-viewer`` (a viewer of channel erp only),
    all with :data:`PASSWORD`."""
    for folder in folders:
        (root / folder).mkdir(parents=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    for role in ("viewer", "operator", "admin"):
        add_user(engine, role, PASSWORD, role)
    add_user(engine, "erp-viewer", PASSWORD, "viewer", {"erp"})
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)
    with serve_hub(
        root, config, command="run", args=("--interval", "0.2"), port=port, env=env
    ) as hub:
        yield hub


def login_token(http: httpx.Client) -> str:
    """The login form's CSRF token (its cookie lands in ``http``)."""
    page = http.get("/ui/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@contextmanager
def signed_in(hub: ServedHub, user: str) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client signed in as ``user``, and the session's CSRF token."""
    with hub.client() as http:
        yield _sign_in(http, user)


def _sign_in(http: httpx.Client, user: str) -> tuple[httpx.Client, str]:
    answer = http.post(
        "/ui/login",
        data={"name": user, "password": PASSWORD, "csrf": login_token(http), "next": "/ui/"},
    )
    assert answer.status_code == 303, answer.text
    page = http.get("/ui/")
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found, page.text
    return http, found.group(1)


def eventually(check: Callable[[], bool], timeout_s: float = 20, what: str = "") -> None:
    """Wait until ``check()`` is true (polling); fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.2)


def open_page(browser: Browser, hub: ServedHub, user: str) -> Page:
    """A Chromium page signed in as ``user`` on the dashboard (dialogs accepted)."""
    page = browser.new_page(viewport={"width": 1440, "height": 900}, base_url=hub.url)
    page.set_default_timeout(30_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/ui/")
    expect(page).to_have_url(f"{hub.url}/ui/login?next=/ui/")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    expect(page.locator("h1")).to_have_text("Dashboard")
    return page


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshots(factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``ERPBRIDGE_UI_SCREENSHOTS``, else a temporary folder."""
    folder = os.environ.get("ERPBRIDGE_UI_SCREENSHOTS")
    path = Path(folder) if folder else factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_path() -> str:
    """The Chromium executable Playwright drives."""
    path = os.environ.get("ERPBRIDGE_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError(
            "no chromium: run scripts/system-packages.sh (apt-get install -y chromium)"
        )
    return path
