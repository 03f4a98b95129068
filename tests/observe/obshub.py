"""What the observability tests share: a hub with a folder IN flow and a folder OUT flow, and
helpers to wait, scrape ``/metrics`` and read the hub's tables."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["CONFIG", "Samples", "query", "scrape", "wait_for"]

T = TypeVar("T")

#: ``inbox`` (IN, every second) and ``erp`` (OUT, immediate). ``{alerts}`` is appended as is.
CONFIG = """
channels:
  shop: {{system: folder, options: {{path: inbox}}}}
  erp: {{system: folder, options: {{path: erp}}}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: {{interval: 1s}}
    source: {{pattern: "*.csv"}}
    mapping:
      code: {{from: id, required: true}}
      name: {{from: name, required: true}}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    retry: {{max_attempts: 50, backoff_s: 0.2, max_backoff_s: 0.5}}
    target: {{format: json, name: "{{key}}.json"}}
    mapping: {{Kunde: code, Name: name}}
{alerts}"""


def wait_for(check: Callable[[], T | None], timeout_s: float = 30, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.2)


#: (metric sample name, frozen labels) → value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    """``GET url`` (a /metrics) parsed with prometheus-client's own text parser."""
    answer = httpx.get(url, headers=headers or {}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def labelled(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples called ``name``, by their labels."""
    return {labels: value for (n, labels), value in samples.items() if n == name}


def query(database: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the hub's SQLite store."""
    with sqlite3.connect(database) as conn:
        return conn.execute(sql, args).fetchall()
