"""Fixtures of the browser tests: a Chromium per module (Playwright's sync API keeps an event
loop running while it is open, which other tests' ``asyncio.run`` would trip over), one
screenshot folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from ui.backoffice import chromium, screenshots


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshots(tmp_path_factory)
