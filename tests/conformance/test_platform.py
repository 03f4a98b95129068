"""The platform connector through the conformance suite's sink half: signed webhooks to a real
receiver (uvicorn on 127.0.0.1) that checks each signature.

Its source half does not apply: a platform pushes its events to the hub's API, so ``read``
has nothing to poll (``tests/api`` covers the events API)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from erpbridge.testing import SinkHarness, SinkSuite
from erpbridge.transports.platform.transport import (
    PlatformChannelOptions,
    PlatformTargetOptions,
    PlatformTransport,
)
from integration.webhook_receiver import Receiver, receiving

SECRET = "whsec-conformance-0123456789"


def closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/erpbridge"


class PlatformSink(SinkHarness):
    """Each record one signed POST; the platform keeps the latest data per key (and drops a
    repeated ``Idempotency-Key``, which the receiver leaves to this view)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def _connect(self, url: str) -> PlatformTransport:
        options = PlatformChannelOptions.model_validate(
            {"webhook_url": url, "credentials": {"webhook_secret": SecretStr(SECRET)}}
        )
        return PlatformTransport(self.channel, options, Path("."))

    def connect(self) -> PlatformTransport:
        return self._connect(self.receiver.url)

    def target(self) -> PlatformTargetOptions:
        return PlatformTargetOptions(event="customer.updated", id_path="id")

    def stored(self) -> Mapping[str, str]:
        return {key: data["name"] for key, data in self.receiver.by_key("customer.updated").items()}

    def refused_data(self) -> dict[str, Any]:
        self.receiver.answers.append((400, {}))  # the platform refuses the next post
        return {"id": "x1", "name": "refused"}

    def unreachable(self) -> PlatformTransport:
        return self._connect(closed_url())


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET) as running:
        yield running


class TestPlatformSink(SinkSuite):
    @pytest.fixture
    def harness(self, receiver: Receiver) -> PlatformSink:
        receiver.clear()
        receiver.answers.clear()
        return PlatformSink(receiver)
