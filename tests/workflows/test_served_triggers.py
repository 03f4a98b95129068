"""``when:`` triggers on versions arriving from IN flows, through the served API: each new
version gets a delivery for exactly the OUT flows whose ``when:`` takes it, written with it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from erpbridge.store.tables import deliveries
from hubprocess import ServedHub, serve_hub
from workflows.claims import config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedHub, str]]:
    root = tmp_path_factory.mktemp("triggers") / "hub"
    root.mkdir()
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    key = create_client(engine, "vms", {"events", "write"})[1]
    engine.dispose()
    with serve_hub(root, config()) as hub:
        yield hub, key


def queued(hub: ServedHub, key: str) -> dict[int, list[str]]:
    """Version → the OUT flows a delivery of claim ``key`` was written for."""
    engine = open_store(f"sqlite:///{hub.database}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.version, deliveries.c.flow)
                .where(deliveries.c.key == key)
                .order_by(deliveries.c.version, deliveries.c.flow)
            )
            found: dict[int, list[str]] = {}
            for version, flow in rows:
                found.setdefault(version, []).append(flow)
            return found
    finally:
        engine.dispose()


def post(hub: ServedHub, key: str, flow: str, body: dict[str, object]) -> httpx.Response:
    with hub.client(headers={"X-API-Key": key}) as client:
        return client.post(f"/api/v1/events/{flow}", json=body)


def test_in_flow_versions_reach_only_the_flows_whose_when_takes_them(
    served: tuple[ServedHub, str],
) -> None:
    hub, key = served
    claim = {"number": "W-100", "status": "submitted", "amount": "120.00"}
    assert post(hub, key, "claims-erp", claim).status_code == 202
    assert post(hub, key, "claims-erp", {**claim, "amount": "130.00"}).status_code == 202
    rejected = {**claim, "amount": "130.00", "status": "rejected"}
    assert post(hub, key, "claims-erp", rejected).status_code == 202
    assert queued(hub, "W-100") == {
        1: ["every-version"],  # a new claim, submitted: no trigger of a state it did not enter
        2: ["every-version"],  # only the amount changed
        3: ["archive", "every-version"],  # entered rejected
    }
