"""The ``nats`` connector through the conformance suite, against the real nats-server (with
JetStream) of ``scripts/nats.sh``: a stream of its own per test, filled and read back by an
independent client (:class:`~integration.brokers.NatsPeer`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.nats.options import (
    NatsChannelOptions,
    NatsStreamOptions,
    NatsTargetOptions,
)
from erpbridge.transports.nats.transport import NatsTransport
from integration.brokers import NatsPeer, free_url, nats_url


def transport(channel: str, url: str) -> NatsTransport:
    options = NatsChannelOptions(url=url, connect_timeout_s=3, publish_timeout_s=5)
    return NatsTransport(channel, options, Path("."))


class NatsSource(SourceHarness):
    """A stream the partner publishes one JSON object per record to, read through a durable
    consumer: acknowledged messages are behind it (no cursor: the consumer is the position)."""

    resumes = False

    def __init__(self, peer: NatsPeer) -> None:
        self.peer = peer
        self.name = peer.stream()

    def connect(self) -> NatsTransport:
        return transport(self.channel, self.peer.url)

    def stream(self) -> NatsStreamOptions:
        return NatsStreamOptions(stream=self.name, consumer="conformance", wait_s=0.3)

    def add(self, keys: Sequence[str]) -> None:
        bodies = [orjson.dumps({"id": key, "name": f"Order {key}"}) for key in keys]
        self.peer.publish(f"{self.name}.orders", bodies, [f"m-{key}" for key in keys])

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def add_broken(self, key: str) -> bool:
        self.peer.publish(f"{self.name}.orders", [b"<order id='bad'/>"], [f"m-{key}"])
        return True

    def unreachable(self) -> NatsTransport:
        return transport(self.channel, free_url("nats"))

    def refused(self) -> NatsTransport:
        # A server whose stream is not there (the stream's name with a suffix).
        self.name += "-gone"
        return transport(self.channel, self.peer.url)


class NatsSink(SinkHarness):
    """A stream storing ``<name>.>``; what it holds is read back by sequence, the latest
    message per key winning. JetStream itself drops a repeated ``Nats-Msg-Id``."""

    def __init__(self, peer: NatsPeer) -> None:
        self.peer = peer
        self.name = peer.stream(max_msg_size=512)

    def connect(self) -> NatsTransport:
        return transport(self.channel, self.peer.url)

    def target(self) -> NatsTargetOptions:
        return NatsTargetOptions(subject=f"{self.name}.{{entity}}.{{key}}")

    def stored(self) -> Mapping[str, str]:
        held: dict[str, str] = {}
        ids = []
        for message in self.peer.messages(self.name):
            ids.append(message.headers["Nats-Msg-Id"])
            held[orjson.loads(message.data)["id"]] = orjson.loads(message.data)["name"]
        assert len(ids) == len(set(ids)), f"the stream holds a message twice: {ids}"
        return held

    def refused_data(self) -> dict[str, Any]:
        return {"id": "x1", "name": "x" * 1000}  # larger than the stream's max_msg_size

    def unreachable(self) -> NatsTransport:
        return transport(self.channel, free_url("nats"))


@pytest.fixture(scope="module")
def peer() -> NatsPeer:
    return NatsPeer(nats_url())


class TestNatsSource(SourceSuite):
    @pytest.fixture
    def harness(self, peer: NatsPeer) -> NatsSource:
        return NatsSource(peer)


class TestNatsSink(SinkSuite):
    @pytest.fixture
    def harness(self, peer: NatsPeer) -> NatsSink:
        return NatsSink(peer)
