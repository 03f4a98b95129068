"""Prometheus metrics: per-process counters and histograms, and the hub's gauges read at scrape.

Two kinds, so that several processes (``erpbridge run``, ``api``, ``worker`` on any number of
machines) answer consistently:

- **Read from the hub store at scrape time** (:class:`HubCollector`): runs and records by flow,
  deliveries by state, the oldest open delivery's age, dead letters, channel health, failing
  streaks, firing alerts. Every process answers the same values; scrape one, or take ``max``.
- **Counted by the process itself** (the module-level metrics below): run duration, delivery
  attempts and their latency per channel, API requests by route template and status with
  latency, rate-limit refusals. Each process exposes its own; scrape every process and ``sum``
  over ``instance`` (docs/observability.md has the scrape configuration).

The process metrics live in prometheus-client's default registry (so its process and Python
collectors come along); :func:`exposition` renders them with a fresh :class:`HubCollector`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from erpbridge.store.read.health import backlog, channel_health, failing_flows, run_totals

__all__ = [
    "API_REQUESTS",
    "API_SECONDS",
    "ATTEMPTS",
    "ATTEMPT_SECONDS",
    "CONTENT_TYPE_LATEST",
    "RATE_LIMITED",
    "RUN_SECONDS",
    "HubCollector",
    "MetricsListenError",
    "enabled",
    "exposition",
    "listen",
    "observe_attempts",
    "observe_run",
    "rate_limited",
    "set_enabled",
]

_DURATIONS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_LATENCIES = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

RUN_SECONDS = Histogram(
    "erpbridge_run_duration_seconds",
    "Duration of the IN runs this process ran, by flow and final status.",
    ["flow", "status"],
    buckets=_DURATIONS,
)
ATTEMPTS = Counter(
    "erpbridge_delivery_attempts",
    "Delivery attempts this process made, by channel, flow and outcome "
    "(delivered, retry, dead, lost_lease).",
    ["channel", "flow", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "erpbridge_delivery_attempt_seconds",
    "Latency of a delivery attempt (map, write, record), by channel.",
    ["channel"],
    buckets=_LATENCIES,
)
API_REQUESTS = Counter(
    "erpbridge_api_requests",
    "API requests this process answered, by method, route template and status code.",
    ["method", "route", "status"],
)
API_SECONDS = Histogram(
    "erpbridge_api_request_seconds",
    "Latency of API requests, by method and route template.",
    ["method", "route"],
    buckets=_LATENCIES,
)
RATE_LIMITED = Counter(
    "erpbridge_rate_limited",
    "Requests refused by a rate limit (429), by limit group.",
    ["group"],
)

#: ``ERPBRIDGE_METRICS=off`` turns this process's own counting off (its hub gauges remain).
_state = {"enabled": os.environ.get("ERPBRIDGE_METRICS", "on").strip().lower() != "off"}


def enabled() -> bool:
    """Whether this process counts (``ERPBRIDGE_METRICS=off`` or a bench's switch turns it off)."""
    return _state["enabled"]


def set_enabled(value: bool) -> None:
    """Turn the per-process counting on or off (the hub gauges are read at scrape anyway)."""
    _state["enabled"] = value


def observe_run(flow: str, status: str, duration_s: float) -> None:
    """A run of ``flow`` ended with ``status`` after ``duration_s``."""
    if _state["enabled"]:
        RUN_SECONDS.labels(flow, status).observe(duration_s)


def rate_limited(group: str) -> None:
    """A request was refused by the rate limit of ``group`` (``anonymous`` for failed logins)."""
    if _state["enabled"]:
        RATE_LIMITED.labels(group).inc()


def observe_attempts(channel: str, flow: str, outcomes: dict[str, int], seconds: float) -> None:
    """One write of ``flow`` to ``channel``: the count of each outcome, and how long it took."""
    if not _state["enabled"]:
        return
    for outcome, count in outcomes.items():
        if count:
            ATTEMPTS.labels(channel, flow, outcome).inc(count)
    ATTEMPT_SECONDS.labels(channel).observe(seconds)


class HubCollector(Collector):
    """The hub's gauges, read from the store when scraped (same answer from any process).

    ``alerts``: a callable giving the firing alerts' rule names (the alert state is read from
    the hub too); ``None`` leaves the alert gauge out.
    """

    def __init__(
        self, engine: Engine, alerts: Callable[[Any], list[tuple[str, str]]] | None = None
    ) -> None:
        self.engine = engine
        self.alerts = alerts

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "erpbridge_hub_store_up", "1 when the hub store answered this scrape, else 0."
        )
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                totals = run_totals(conn)
                queue = backlog(conn)
                at = datetime.now(UTC)
                health = channel_health(conn, at)
                failing = failing_flows(conn)
                firing = self.alerts(conn) if self.alerts is not None else None
        except Exception:  # noqa: BLE001 - a scrape reports the store down, it does not fail
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        runs = CounterMetricFamily(
            "erpbridge_runs", "IN runs in the hub, by flow and status.", labels=["flow", "status"]
        )
        records = CounterMetricFamily(
            "erpbridge_records",
            "Records counted by the runs in the hub, by flow and kind "
            "(read, created, updated, unchanged, rejected, deleted).",
            labels=["flow", "kind"],
        )
        sums: dict[tuple[str, str], int] = {}
        for t in totals:
            runs.add_metric([t.flow, t.status], t.runs)
            for kind in ("read", "created", "updated", "unchanged", "rejected", "deleted"):
                sums[(t.flow, kind)] = sums.get((t.flow, kind), 0) + getattr(t, kind)
        for (flow, kind), value in sorted(sums.items()):
            records.add_metric([flow, kind], value)
        yield runs
        yield records
        states = GaugeMetricFamily(
            "erpbridge_deliveries",
            "Deliveries in the ledger, by flow, channel and state.",
            labels=["flow", "channel", "state"],
        )
        dead = GaugeMetricFamily(
            "erpbridge_dead_letters",
            "Dead deliveries waiting for a retry, by flow and channel.",
            labels=["flow", "channel"],
        )
        oldest: dict[tuple[str, str], datetime] = {}
        for b in queue:
            states.add_metric([b.flow, b.channel, b.state], b.count)
            if b.state == "dead":
                dead.add_metric([b.flow, b.channel], b.count)
            if b.oldest is not None:
                key = (b.flow, b.channel)
                oldest[key] = min(oldest.get(key, b.oldest), b.oldest)
        age = GaugeMetricFamily(
            "erpbridge_oldest_pending_age_seconds",
            "Age of the oldest delivery still on its way (pending, failed, in flight, held), "
            "by flow and channel; absent when none is.",
            labels=["flow", "channel"],
        )
        for (flow, channel), created in sorted(oldest.items()):
            age.add_metric([flow, channel], max(0.0, (at - created).total_seconds()))
        yield states
        yield dead
        yield age
        channel_up = GaugeMetricFamily(
            "erpbridge_channel_up",
            "1 when the channel's newest run or delivery attempt succeeded, 0 when it failed.",
            labels=["channel"],
        )
        for name, h in sorted(health.items()):
            channel_up.add_metric([name], 1 if h.state == "up" else 0)
        yield channel_up
        streak = GaugeMetricFamily(
            "erpbridge_flow_failing_runs",
            "Failed runs in a row since the flow's last success (flows currently failing).",
            labels=["flow"],
        )
        for f in failing:
            streak.add_metric([f.flow], f.streak)
        yield streak
        if firing is not None:
            alerts = GaugeMetricFamily(
                "erpbridge_alerts_firing",
                "Alerts firing now, by rule and subject.",
                labels=["rule", "subject"],
            )
            for rule, subject in firing:
                alerts.add_metric([rule, subject], 1)
            yield alerts
        took = GaugeMetricFamily(
            "erpbridge_hub_scrape_seconds", "Time spent reading the hub store for this scrape."
        )
        took.add_metric([], time.perf_counter() - started)
        yield took


_lock = threading.Lock()


def exposition(
    engine: Engine, alerts: Callable[[Any], list[tuple[str, str]]] | None = None
) -> bytes:
    """The text exposition of this process's metrics and the hub's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Default())
    registry.register(HubCollector(engine, alerts))
    with _lock:  # one hub read at a time per process, however many scrapers
        return generate_latest(registry)


class _Default(Collector):
    """The default registry's metrics (this process's counters, process and Python info)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class MetricsListenError(Exception):
    """``--metrics-listen`` names no usable address (not host:port, or the port is taken)."""


def listen(address: str, engine: Engine) -> str:
    """Serve ``/metrics`` (this process and the hub's gauges) on ``host:port`` in a thread,
    without authentication: for a worker, which has no API, or a private scrape network."""
    from prometheus_client import start_http_server

    from erpbridge.store.read.alerts import firing_pairs

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise MetricsListenError(
            f"--metrics-listen {address!r}: give host:port, e.g. 127.0.0.1:9464"
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Default())
    registry.register(HubCollector(engine, firing_pairs))
    try:
        server, _thread = start_http_server(int(port), host.strip("[]"), registry)
    except OSError as exc:
        raise MetricsListenError(f"--metrics-listen {address!r}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    shown = bound_host.decode() if isinstance(bound_host, bytes) else bound_host
    return f"{shown}:{bound_port}"
