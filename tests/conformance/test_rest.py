"""The REST connector through the conformance suite, against the real test API (json-server
behind its gateway, ``scripts/restapi.sh``): the source reads a collection incrementally by
``updatedAt`` with page-number paging, the sink creates and updates items by the hub key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.places import closed_port
from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.rest.transport import (
    RestChannelOptions,
    RestStreamOptions,
    RestTargetOptions,
    RestTransport,
)
from integration.servers import require_server


@pytest.fixture(scope="module")
def api() -> dict[str, str]:
    line = require_server("ERPBRIDGE_TEST_RESTAPI", "the REST test API (scripts/restapi.sh)")
    info: dict[str, str] = json.loads(line)
    return info


class Collection:
    """A fresh collection of its own on the test API."""

    def __init__(self, api: Mapping[str, str]) -> None:
        self.api = api
        self.name = f"c{uuid.uuid4().hex[:12]}"
        self.items: list[Any] = []
        self.put()

    def put(self) -> None:
        """Replace the collection with :attr:`items` (the test control, no auth)."""
        url = f"{self.api['url']}/_admin/collections/{self.name}"
        httpx.put(url, json=self.items).raise_for_status()

    def listed(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{self.api['url']}/open/api/{self.name}").json()
        return found

    def transport(self, channel: str, base_url: str, **options: Any) -> RestTransport:
        settings = RestChannelOptions.model_validate({"base_url": base_url, **options})
        return RestTransport(channel, settings, Path("/"))


class RestSource(SourceHarness):
    """Items stamped one second apart; the source pages by two and filters by
    ``updatedAt_gte`` (inclusive: the boundary item may come again)."""

    def __init__(self, api: Mapping[str, str]) -> None:
        self.api = api
        self.collection = Collection(api)

    def connect(self) -> RestTransport:
        return self.collection.transport(self.channel, f"{self.api['url']}/open/")

    def stream(self) -> RestStreamOptions:
        return RestStreamOptions.model_validate(
            {
                "resource": f"api/{self.collection.name}",
                "pagination": {
                    "type": "page",
                    "page_param": "_page",
                    "size_param": "_limit",
                    "page_size": 2,
                },
                "params": {"_sort": "updatedAt,id", "_order": "asc,asc"},
                "incremental": {
                    "cursor_field": "updatedAt",
                    "changed_since_param": "updatedAt_gte",
                    "sorted": True,
                },
            }
        )

    def add(self, keys: Sequence[str]) -> None:
        for key in keys:
            second = len(self.collection.items) + 1
            stamp = f"2026-01-01T10:{second // 60:02d}:{second % 60:02d}.000Z"
            self.collection.items.append({"id": key, "name": f"Name {key}", "updatedAt": stamp})
        self.collection.put()

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def unreachable(self) -> RestTransport:
        return self.collection.transport(self.channel, f"http://127.0.0.1:{closed_port()}/")

    def refused(self) -> RestTransport:
        return self.collection.transport(
            self.channel,
            f"{self.api['url']}/basic/",
            auth={"type": "basic", "username": "erp"},
            credentials={"password": "wrong-" + uuid.uuid4().hex},
        )


class TestRestSource(SourceSuite):
    @pytest.fixture
    def harness(self, api: dict[str, str]) -> RestSource:
        return RestSource(api)


class RestSink(SinkHarness):
    """Items under the hub key (``PUT …/{key}``, created by ``POST`` when missing)."""

    def __init__(self, api: Mapping[str, str]) -> None:
        self.api = api
        self.collection = Collection(api)

    def connect(self) -> RestTransport:
        return self.collection.transport(self.channel, f"{self.api['url']}/open/")

    def target(self) -> RestTargetOptions:
        return RestTargetOptions.model_validate({"resource": f"api/{self.collection.name}"})

    def stored(self) -> Mapping[str, str]:
        return {str(item["id"]): item["name"] for item in self.collection.listed()}

    def refused_data(self) -> dict[str, Any]:
        # The gateway answers the next request under the collection with 422, as an API
        # refusing a record's content does.
        prefix = f"/open/api/{self.collection.name}"
        body = {"prefix": prefix, "status": 422, "times": 1}
        httpx.post(f"{self.api['url']}/_admin/faults", json=body).raise_for_status()
        return {"id": "x1", "name": "refused"}

    def unreachable(self) -> RestTransport:
        return self.collection.transport(self.channel, f"http://127.0.0.1:{closed_port()}/")


class TestRestSink(SinkSuite):
    @pytest.fixture
    def harness(self, api: dict[str, str]) -> RestSink:
        return RestSink(api)
