"""The ``amqp`` connector through the conformance suite, against the real RabbitMQ of
``scripts/rabbitmq.sh``: a queue of its own per test, filled and read back by an independent
client (:class:`~integration.brokers.AmqpPeer`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest

from erpbridge.connectors import SourceRecord
from erpbridge.testing import SinkHarness, SinkSuite, SourceHarness, SourceSuite
from erpbridge.transports.amqp.options import (
    AmqpChannelOptions,
    AmqpStreamOptions,
    AmqpTargetOptions,
)
from erpbridge.transports.amqp.transport import AmqpTransport
from integration.brokers import AmqpPeer, amqp_url, free_url


def transport(channel: str, url: str) -> AmqpTransport:
    return AmqpTransport(channel, AmqpChannelOptions(url=url, connect_timeout_s=5), Path("."))


class AmqpSource(SourceHarness):
    """A queue the partner publishes one JSON object per record to; acknowledged messages are
    gone (no cursor to resume from: the queue is the position)."""

    resumes = False

    def __init__(self, peer: AmqpPeer) -> None:
        self.peer = peer
        self.name = peer.queue()

    def connect(self) -> AmqpTransport:
        return transport(self.channel, self.peer.url)

    def stream(self) -> AmqpStreamOptions:
        return AmqpStreamOptions(queue=self.name, wait_s=0.3)

    def add(self, keys: Sequence[str]) -> None:
        bodies = [orjson.dumps({"id": key, "name": f"Order {key}"}) for key in keys]
        self.peer.publish(self.name, bodies, [f"m-{key}" for key in keys])

    def key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def add_broken(self, key: str) -> bool:
        self.peer.publish(self.name, [b"<order id='bad'/>"], [f"m-{key}"])
        return True

    def unreachable(self) -> AmqpTransport:
        return transport(self.channel, free_url("amqp"))

    def refused(self) -> AmqpTransport:
        wrong = self.peer.url.replace("guest:guest@", "guest:wrong@")
        return transport(self.channel, wrong)


class AmqpSink(SinkHarness):
    """A queue the default exchange routes to by name; what it holds is read back, the latest
    message per key winning and a repeated message id counted once (what a consumer does)."""

    def __init__(self, peer: AmqpPeer) -> None:
        self.peer = peer
        self.name = peer.queue()
        self.held: dict[str, str] = {}
        self.ids: set[str] = set()

    def connect(self) -> AmqpTransport:
        return transport(self.channel, self.peer.url)

    def target(self) -> AmqpTargetOptions:
        return AmqpTargetOptions(routing_key=self.name)

    def stored(self) -> Mapping[str, str]:
        for message in self.peer.drain(self.name):
            assert message.message_id, "a message without the idempotency key"
            if message.message_id in self.ids:
                continue
            self.ids.add(message.message_id)
            data = orjson.loads(message.body)
            self.held[data["id"]] = data["name"]
        return self.held

    def unreachable(self) -> AmqpTransport:
        return transport(self.channel, free_url("amqp"))


@pytest.fixture(scope="module")
def peer() -> AmqpPeer:
    return AmqpPeer(amqp_url())


class TestAmqpSource(SourceSuite):
    @pytest.fixture
    def harness(self, peer: AmqpPeer) -> AmqpSource:
        return AmqpSource(peer)


class TestAmqpSink(SinkSuite):
    @pytest.fixture
    def harness(self, peer: AmqpPeer) -> AmqpSink:
        return AmqpSink(peer)
