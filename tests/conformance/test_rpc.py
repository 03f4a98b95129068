"""The RPC connector (Tryton dialect, JSON-RPC) through the conformance suite, against the real
Tryton the test suite starts (``scripts/tryton.sh``): parties whose code starts with the
harness's own prefix, read incrementally by ``write_date``, written by upsert on ``code``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.places import closed_port
from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.rpc.transport import RpcChannelOptions, RpcStreamOptions, RpcTransport
from erpbridge.transports.rpc.values import RpcTargetOptions
from integration.servers import require_server
from integration.test_rpc_tryton import Tryton

MODEL = "party.party"


@pytest.fixture(scope="module")
def tryton() -> Tryton:
    return Tryton(require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)"))


class Parties:
    """Parties of this harness's own code prefix (the Tryton database is shared)."""

    channel = "conformance"

    def __init__(self, tryton: Tryton) -> None:
        self.tryton = tryton
        self.prefix = f"Q{uuid.uuid4().hex[:8]}-"

    def transport(
        self, base_url: str | None = None, username: str | None = None, password: str | None = None
    ) -> RpcTransport:
        options = RpcChannelOptions.model_validate(
            {
                "base_url": base_url or self.tryton.base_url,
                "dialect": "tryton",
                "protocol": "jsonrpc",
                "database": self.tryton.database,
                "username": username or self.tryton.username,
                "timeout_s": 10,
                "credentials": {"password": password or self.tryton.password},
            }
        )
        return RpcTransport(self.channel, options, Path("."))

    def connect(self) -> RpcTransport:
        return self.transport()

    def unreachable(self) -> RpcTransport:
        return self.transport(base_url=f"http://127.0.0.1:{closed_port()}/")

    def stored(self) -> Mapping[str, str]:
        rows = self.tryton.find(MODEL, self.prefix, ["code", "name"])
        return {row["code"].removeprefix(self.prefix): row["name"] for row in rows}


class RpcSource(Parties, SourceHarness):
    def stream(self) -> RpcStreamOptions:
        return RpcStreamOptions.model_validate(
            {
                "model": MODEL,
                "domain": [["code", "like", f"{self.prefix}%"]],
                "fields": ["code", "name"],
                "cursor_field": "write_date",
            }
        )

    def add(self, keys: Sequence[str]) -> None:
        for key in keys:  # one transaction each: each one stamped later
            self.tryton.call(MODEL, "create", [{"code": self.prefix + key, "name": f"Name {key}"}])

    def key(self, record: SourceRecord) -> str:
        return str(record.data["code"]).removeprefix(self.prefix)

    def refused(self) -> RpcTransport:
        # A user of its own: failed logins slow down later logins of the same user in Tryton.
        login = f"{self.prefix}user".lower()
        user = {"name": login, "login": login, "password": "Right-Horse-Staple-1"}
        self.tryton.call("res.user", "create", [user])
        return self.transport(username=login, password="Wrong-" + uuid.uuid4().hex)


class TestRpcSource(SourceSuite):
    @pytest.fixture
    def harness(self, tryton: Tryton) -> RpcSource:
        return RpcSource(tryton)


class RpcSink(Parties, SinkHarness):
    def target(self) -> RpcTargetOptions:
        return RpcTargetOptions(model=MODEL, method="upsert", match_field="code")

    def data(self, key: str, version: int) -> dict[str, Any]:
        return {"code": self.prefix + key, "name": f"{key} v{version}"}

    def refused_data(self) -> dict[str, Any]:
        return {"code": self.prefix + "x1", "name": "refused", "no_such_field": 1}


class TestRpcSink(SinkSuite):
    @pytest.fixture
    def harness(self, tryton: Tryton) -> RpcSink:
        return RpcSink(tryton)
