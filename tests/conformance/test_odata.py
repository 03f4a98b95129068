"""The OData connector through the conformance suite, against the SAP CAP test service
(``scripts/cap.sh``, OData V4): business partners of the harness's own key prefix, read
incrementally by the server-set ``LastChangeDateTime``, written by upsert (read by key, then
POST or PATCH with the ETag)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.places import closed_port
from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.odata.transport import (
    ODataChannelOptions,
    ODataStreamOptions,
    ODataTransport,
)
from erpbridge.transports.odata.write import ODataTargetOptions
from integration.cap_service import PASSWORD, USER, Service
from integration.servers import require_server

SET = "A_BusinessPartner"
PATH = f"API_BUSINESS_PARTNER/{SET}"


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    cap = require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service (scripts/cap.sh)")
    own = Service(cap)
    yield own
    own.close()


class Partners:
    """Business partners whose keys start with a prefix of this harness (the service is
    shared and seeded: the prefix makes an empty system of its own)."""

    channel = "conformance"

    def __init__(self, service: Service) -> None:
        self.cap = str(service.client.base_url).removesuffix("/odata/v4/")
        self.prefix = "K" + uuid.uuid4().hex[:5].upper()  # keys have at most 10 characters
        self.service = service

    def transport(self, base: str | None = None, password: str = PASSWORD) -> ODataTransport:
        options = ODataChannelOptions.model_validate(
            {
                "base_url": base or f"{self.cap}/odata/v4/API_BUSINESS_PARTNER/",
                "version": "4",
                "auth": {"type": "basic", "username": USER},
                "credentials": {"password": password},
            }
        )
        return ODataTransport(self.channel, options, Path("."))

    def unreachable(self) -> ODataTransport:
        return self.transport(f"http://127.0.0.1:{closed_port()}/odata/v4/API_BUSINESS_PARTNER/")

    def mine(self) -> str:
        return f"startswith(BusinessPartner,'{self.prefix}')"

    def listed(self) -> dict[str, str]:
        answer = self.service.client.get(PATH, params={"$filter": self.mine()})
        answer.raise_for_status()
        return {
            item["BusinessPartner"].removeprefix(self.prefix): item["BusinessPartnerFullName"]
            for item in answer.json()["value"]
        }


class ODataSource(Partners, SourceHarness):
    def connect(self) -> ODataTransport:
        return self.transport()

    def stream(self) -> ODataStreamOptions:
        return ODataStreamOptions(
            entity_set=SET, filter=self.mine(), cursor_field="LastChangeDateTime"
        )

    def add(self, keys: Sequence[str]) -> None:
        for key in keys:  # one after the other: the server stamps each later
            self.service.post(
                PATH,
                {"BusinessPartner": self.prefix + key, "BusinessPartnerFullName": f"Name {key}"},
            )

    def key(self, record: SourceRecord) -> str:
        return str(record.data["BusinessPartner"]).removeprefix(self.prefix)

    def refused(self) -> ODataTransport:
        return self.transport(password="wrong-" + uuid.uuid4().hex)


class TestODataSource(SourceSuite):
    @pytest.fixture
    def harness(self, service: Service) -> ODataSource:
        return ODataSource(service)


class ODataSink(Partners, SinkHarness):
    def connect(self) -> ODataTransport:
        return self.transport()

    def target(self) -> ODataTargetOptions:
        return ODataTargetOptions(entity_set=SET)

    def data(self, key: str, version: int) -> dict[str, Any]:
        return {
            "BusinessPartner": self.prefix + key,
            "BusinessPartnerCategory": "2",
            "BusinessPartnerFullName": f"{key} v{version}",
        }

    def stored(self) -> Mapping[str, str]:
        return self.listed()

    def refused_data(self) -> dict[str, Any]:
        return {"BusinessPartner": self.prefix + "x1", "NoSuchProperty": "refused"}


class TestODataSink(SinkSuite):
    @pytest.fixture
    def harness(self, service: Service) -> ODataSink:
        return ODataSink(service)
