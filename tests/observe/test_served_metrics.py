"""``/metrics`` of served processes, parsed with prometheus-client's text parser: after a known
workload the hub's values equal the ledger and the runs table, whichever process is scraped
(``erpbridge run``, a second ``erpbridge api``, a ``worker --metrics-listen``), and the per-process
counters add up across processes to what the ledger holds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, free_port, serve_hub
from observe.obshub import CONFIG, Samples, labelled, query, scrape, wait_for


@pytest.fixture(scope="module")
def processes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServedHub, ServedHub, str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("metrics") / "hub"
    (root / "inbox").mkdir(parents=True)
    (root / "erp").mkdir()
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    keys = {
        "prom": create_client(engine, "prom", {"read"})[1],
        "narrow": create_client(engine, "narrow", {"read"}, channels={"erp"})[1],
        "burst": create_client(engine, "burst", {"read"}, rate_limit="2/minute")[1],
    }
    engine.dispose()
    env = {"ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    config = CONFIG.format(alerts="")
    # 4 rows, one without a name: 3 created, 1 rejected; 3 deliveries to the folder erp.
    (root / "inbox" / "a.csv").write_text("id,name\nC1,Ann\nC2,Bob\nC3,Cy\nC4,\n", encoding="utf-8")
    port = free_port()
    worker_argv = [sys.executable, "-m", "erpbridge", "worker", "-c", str(root / "erpbridge.yaml")]
    worker_argv += ["--interval", "0.2", "--metrics-listen", f"127.0.0.1:{port}"]
    with (
        serve_hub(root, config, command="run", args=("--interval", "0.2"), env=env) as run,
        serve_hub(root, config, command="api", env=env) as api,
        (root / "worker.log").open("wb") as log,
    ):
        worker = subprocess.Popen(
            worker_argv, env={**os.environ, **run.env}, cwd=root, stdout=log, stderr=log
        )
        try:
            worker_url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: _answers(worker_url), 40, "the worker's metrics listener")
            yield run, api, worker_url, keys
        finally:
            worker.terminate()
            worker.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _hub_values(samples: Samples) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    names = ("erpbridge_runs_total", "erpbridge_records_total", "erpbridge_deliveries")
    return {name: labelled(samples, name) for name in names}


def _ledger(database: Path) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    runs = query(
        database, "SELECT flow, status, count(*) FROM runs WHERE NOT dry_run GROUP BY 1, 2"
    )
    sums = query(
        database,
        "SELECT flow, sum(read), sum(created), sum(updated), sum(unchanged), sum(rejected), "
        "sum(deleted) FROM runs WHERE NOT dry_run GROUP BY flow",
    )
    states = query(
        database, "SELECT flow, channel, state, count(*) FROM deliveries GROUP BY 1, 2, 3"
    )
    kinds = ("read", "created", "updated", "unchanged", "rejected", "deleted")
    return {
        "erpbridge_runs_total": {
            frozenset({("flow", f), ("status", s)}): float(n) for f, s, n in runs
        },
        "erpbridge_records_total": {
            frozenset({("flow", row[0]), ("kind", kind)}): float(value)
            for row in sums
            for kind, value in zip(kinds, row[1:], strict=True)
        },
        "erpbridge_deliveries": {
            frozenset({("flow", f), ("channel", c), ("state", s)}): float(n)
            for f, c, s, n in states
        },
    }


def test_every_process_answers_the_ledger_and_the_runs_table_and_counters_add_up(
    processes: tuple[ServedHub, ServedHub, str, dict[str, str]],
) -> None:
    run, api, worker_url, keys = processes
    auth = {"X-API-Key": keys["prom"]}
    wait_for(
        lambda: (
            query(run.database, "SELECT count(*) FROM deliveries WHERE state = 'delivered'")
            == [(3,)]
        ),
        40,
        "3 deliveries",
    )

    def agreeing() -> tuple[list[Samples], dict[str, object]] | None:
        # Runs land every second: take the three scrapes and the tables in a quiet moment.
        before = _ledger(run.database)
        scraped = [
            scrape(f"{run.url}/metrics", auth),
            scrape(f"{api.url}/metrics", auth),
            scrape(worker_url),
        ]
        after = _ledger(run.database)
        if before != after:
            return None
        if all(_hub_values(s) == before for s in scraped):
            return scraped, before  # type: ignore[return-value]
        return None

    scraped, ledger = wait_for(agreeing, 30, "three scrapes equal to the tables")
    runs = ledger["erpbridge_runs_total"]
    assert runs, ledger
    records = ledger["erpbridge_records_total"]
    key = frozenset({("flow", "customers-in"), ("kind", "created")})
    assert records[key] == 3.0
    assert records[frozenset({("flow", "customers-in"), ("kind", "rejected")})] == 1.0
    assert records[frozenset({("flow", "customers-in"), ("kind", "read")})] == 4.0
    delivered = frozenset({("flow", "customers-out"), ("channel", "erp"), ("state", "delivered")})
    assert ledger["erpbridge_deliveries"] == {delivered: 3.0}
    for samples in scraped:
        assert labelled(samples, "erpbridge_hub_store_up") == {frozenset(): 1.0}
        assert labelled(samples, "erpbridge_channel_up") == {
            frozenset({("channel", "erp")}): 1.0,
            frozenset({("channel", "shop")}): 1.0,
        }
        assert labelled(samples, "erpbridge_dead_letters") == {}
        assert labelled(samples, "erpbridge_oldest_pending_age_seconds") == {}

    # Per process: the attempts of the embedded worker and of the worker process add up to the
    # ledger's attempts; the API process made none.
    attempts = query(
        run.database,
        "SELECT d.channel, d.flow, a.outcome, count(*) FROM delivery_attempts a "
        "JOIN deliveries d ON d.id = a.delivery_id GROUP BY 1, 2, 3",
    )
    counted: dict[frozenset[tuple[str, str]], float] = {}
    for samples in scraped:
        for labels, value in labelled(samples, "erpbridge_delivery_attempts_total").items():
            counted[labels] = counted.get(labels, 0.0) + value
    assert counted == {
        frozenset({("channel", c), ("flow", f), ("outcome", o)}): float(n)
        for c, f, o, n in attempts
    }
    assert labelled(scraped[1], "erpbridge_delivery_attempts_total") == {}
    # The scheduler lives in `run` only: its run-duration histogram counts every run so far
    # (the two other processes ran none).
    histogram = labelled(scraped[0], "erpbridge_run_duration_seconds_count")
    assert sum(histogram.values()) == sum(runs.values())
    assert labelled(scraped[1], "erpbridge_run_duration_seconds_count") == {}
    assert labelled(scraped[2], "erpbridge_run_duration_seconds_count") == {}


def test_api_requests_are_counted_by_route_template_and_status_with_refusals(
    processes: tuple[ServedHub, ServedHub, str, dict[str, str]],
) -> None:
    _, api, _, keys = processes
    auth = {"X-API-Key": keys["prom"]}
    with api.client(headers=auth) as http:
        assert http.get("/api/v1/runs/1").status_code == 200
        assert http.get("/api/v1/runs/1").status_code == 200
        assert http.get("/api/v1/runs/999999").status_code == 404
        assert http.get("/no/such/route").status_code == 404
    with api.client(headers={"X-API-Key": keys["burst"]}) as http:
        codes = [http.get("/api/v1/runs").status_code for _ in range(3)]
    assert codes == [200, 200, 429], codes
    samples = scrape(f"{api.url}/metrics", auth)
    requests = labelled(samples, "erpbridge_api_requests_total")
    route = frozenset({("method", "GET"), ("route", "/api/v1/runs/{run_id}"), ("status", "200")})
    assert requests[route] == 2.0
    missing = frozenset({("method", "GET"), ("route", "/api/v1/runs/{run_id}"), ("status", "404")})
    assert requests[missing] == 1.0
    unmatched = frozenset({("method", "GET"), ("route", "unmatched"), ("status", "404")})
    assert requests[unmatched] == 1.0
    latency = labelled(samples, "erpbridge_api_request_seconds_count")
    assert latency[frozenset({("method", "GET"), ("route", "/api/v1/runs/{run_id}")})] == 3.0
    refused = labelled(samples, "erpbridge_rate_limited_total")
    assert refused == {frozenset({("group", "client")}): 1.0}


def test_metrics_need_an_unrestricted_reader(
    processes: tuple[ServedHub, ServedHub, str, dict[str, str]],
) -> None:
    run, _, _, keys = processes
    assert httpx.get(f"{run.url}/metrics").status_code == 401
    narrow = httpx.get(f"{run.url}/metrics", headers={"X-API-Key": keys["narrow"]})
    assert narrow.status_code == 403
    assert narrow.json()["error"]["code"] == "channel_restricted"
