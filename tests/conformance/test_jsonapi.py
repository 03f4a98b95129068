"""The ``jsonapi`` connector (system type ``oro``) through the conformance suite.

No Oro server can run here: the channel is :mod:`systems.oro.fakeoro`, a local test server
answering with the shapes of Oro's published API documentation (OAuth 2.0 client credentials,
``filter[updatedAt][gte]``, ``page[number]``/``page[size]``, JSON:API documents and errors). The
source reads customers incrementally by ``updatedAt``, two a page, sorted by id; the sink finds
customers by ``filter[erpCode]`` and creates or updates them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from conformance.places import closed_port
from erpbridge.connectors import SourceRecord
from erpbridge.systems.oro.options import JsonApiStreamOptions, JsonApiTargetOptions
from erpbridge.systems.oro.transport import JsonApiTransport
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.rest.options import RestChannelOptions
from systems.oro.fakeoro import API, CLIENT_ID, CLIENT_SECRET, serve_oro


class Oro:
    """A fresh stand-in for Oro without customers, and connectors to it."""

    def __init__(self, stack: ExitStack) -> None:
        self.fake, self.url = stack.enter_context(serve_oro())
        self.fake.data["customers"] = {}

    def transport(
        self, channel: str, url: str | None = None, secret: str = CLIENT_SECRET
    ) -> JsonApiTransport:
        options = RestChannelOptions.model_validate(
            {
                "base_url": url or self.url,
                "auth": {"type": "oauth2", "token_url": "/oauth2-token", "client_id": CLIENT_ID,
                         "client_auth": "body", "encoding": "json"},
                "credentials": {"client_secret": SecretStr(secret)},
            }
        )  # fmt: skip
        return JsonApiTransport(channel, options, Path("/"))


class OroSource(SourceHarness):
    """Customers stamped one second apart, read two a page from ``filter[updatedAt][gte]``."""

    def __init__(self, oro: Oro) -> None:
        self.oro = oro

    def connect(self) -> JsonApiTransport:
        return self.oro.transport(self.channel)

    def stream(self) -> JsonApiStreamOptions:
        return JsonApiStreamOptions.model_validate(
            {
                "resource": "customers",
                "params": {"sort": "id"},
                "pagination": {"type": "page", "page_param": "page[number]",
                               "size_param": "page[size]", "page_size": 2},
                "incremental": {"cursor_field": "updatedAt",
                                "changed_since_param": "filter[updatedAt][gte]",
                                "format": "%Y-%m-%dT%H:%M:%SZ"},
            }
        )  # fmt: skip

    def add(self, keys: Sequence[str]) -> None:
        customers = self.oro.fake.data["customers"]
        for key in keys:
            number = len(customers) + 1
            stamp = f"2026-01-01T10:{number // 60:02d}:{number % 60:02d}Z"
            customers[str(number)] = {
                "type": "customers",
                "id": str(number),
                "attributes": {"name": f"Name {key}", "erpCode": key, "updatedAt": stamp},
                "relationships": {},
            }

    def key(self, record: SourceRecord) -> str:
        return str(record.data["erpCode"])

    def unreachable(self) -> JsonApiTransport:
        return self.oro.transport(self.channel, f"http://127.0.0.1:{closed_port()}{API}")

    def refused(self) -> JsonApiTransport:
        return self.oro.transport(self.channel, secret="not-the-secret")


class OroSink(SinkHarness):
    """Customers found by their ``erpCode`` (the hub key), created when none has it."""

    def __init__(self, oro: Oro) -> None:
        self.oro = oro

    def connect(self) -> JsonApiTransport:
        return self.oro.transport(self.channel)

    def target(self) -> JsonApiTargetOptions:
        return JsonApiTargetOptions.model_validate(
            {"resource": "customers", "type": "customers", "lookup": {"filter[erpCode]": "erpCode"}}
        )

    def data(self, key: str, version: int) -> dict[str, Any]:
        return {"erpCode": key, "name": f"{key} v{version}"}

    def stored(self) -> Mapping[str, str]:
        customers = self.oro.fake.data["customers"].values()
        return {c["attributes"]["erpCode"]: c["attributes"]["name"] for c in customers}

    def refused_data(self) -> dict[str, Any]:
        return {"erpCode": "x1", "name": "x" * 300}  # Oro: at most 255 characters

    def unreachable(self) -> JsonApiTransport:
        return self.oro.transport(self.channel, f"http://127.0.0.1:{closed_port()}{API}")


@pytest.fixture
def oro() -> Iterator[Oro]:
    with ExitStack() as stack:
        yield Oro(stack)


class TestJsonApiSource(SourceSuite):
    @pytest.fixture
    def harness(self, oro: Oro) -> OroSource:
        return OroSource(oro)


class TestJsonApiSink(SinkSuite):
    @pytest.fixture
    def harness(self, oro: Oro) -> OroSink:
        return OroSink(oro)
