"""The SOAP connector through the conformance suite, against the spyne ERP service the SOAP
integration tests start (``tests/integration/soap_erp.py``, a subprocess per module, emptied
before each test): customers paged by ``ListCustomers(changedSince, offset, limit)`` with a
server-set ``modified_at`` cursor, written by ``UpsertCustomer`` (by code)."""

# ruff: noqa: F811 - the fixtures imported from the SOAP integration tests are parameters here

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.places import closed_port
from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.soap.options import (
    SoapChannelOptions,
    SoapStreamOptions,
    SoapTargetOptions,
)
from erpbridge.transports.soap.transport import SoapTransport
from integration.test_soap import (  # noqa: F401 - api, erp and server: its fixtures
    PASSWORD,
    USER,
    Erp,
    api,
    erp,
    server,
    upsert,
)


class Customers:
    """The service's customers, keyed by ``code``."""

    channel = "conformance"

    def __init__(self, erp: Erp, root: Path) -> None:
        self.erp = erp
        self.root = root

    def transport(self, endpoint: str | None = None, password: str = PASSWORD) -> SoapTransport:
        options = SoapChannelOptions.model_validate(
            {
                "wsdl": self.erp.wsdl,
                "endpoint": endpoint,
                "auth": "basic",
                "username": USER,
                "operations": ["ListCustomers", "UpsertCustomer"],
                "credentials": {"password": password},
            }
        )
        return SoapTransport(self.channel, options, self.root)

    def connect(self) -> SoapTransport:
        return self.transport()

    def unreachable(self) -> SoapTransport:
        return self.transport(endpoint=f"http://127.0.0.1:{closed_port()}/")

    def stored(self) -> Mapping[str, str]:
        page = self.erp.api.service.ListCustomers(changedSince=None, offset=0, limit=1000)
        found = page.customers.Customer if page.customers is not None else []
        return {c.code: c.name for c in found}


class SoapSource(Customers, SourceHarness):
    def stream(self) -> SoapStreamOptions:
        return SoapStreamOptions.model_validate(
            {
                "operation": "ListCustomers",
                "params": {"changedSince": "{cursor}", "offset": "{offset}", "limit": "{limit}"},
                "records_path": "customers.Customer",
                "cursor_field": "modified_at",
                "key_field": "id",
            }
        )

    def add(self, keys: Sequence[str]) -> None:
        for key in keys:  # the service stamps each one later than every earlier one
            upsert(self.erp, key, f"Name {key}")

    def key(self, record: SourceRecord) -> str:
        return str(record.data["code"])

    def refused(self) -> SoapTransport:
        return self.transport(password="wrong-" + uuid.uuid4().hex)


class TestSoapSource(SourceSuite):
    @pytest.fixture
    def harness(self, erp: Erp, tmp_path: Path) -> SoapSource:
        return SoapSource(erp, tmp_path)


class SoapSink(Customers, SinkHarness):
    def target(self) -> SoapTargetOptions:
        return SoapTargetOptions(operation="UpsertCustomer", argument="customer")

    def data(self, key: str, version: int) -> dict[str, Any]:
        return {"code": key, "name": f"{key} v{version}"}

    def refused_data(self) -> dict[str, Any]:
        return {"code": "x1"}  # no name: the service answers the fault Client.Invalid


class TestSoapSink(SinkSuite):
    @pytest.fixture
    def harness(self, erp: Erp, tmp_path: Path) -> SoapSink:
        return SoapSink(erp, tmp_path)
