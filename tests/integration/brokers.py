"""The message brokers of the streaming transports' tests, as a partner system uses them.

RabbitMQ comes from ``scripts/rabbitmq.sh`` (``ERPBRIDGE_TEST_AMQP_URL``), NATS with JetStream
from ``scripts/nats.sh`` (``ERPBRIDGE_TEST_NATS_URL``). :class:`AmqpPeer` is the other side of an
``amqp`` channel: its own aio-pika connection per call, so what it sees is what the broker holds,
not what the transport under test believes. :func:`restart` kills a broker as a crash would and
starts it again on its data (the scripts' ``restart``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc

from integration.servers import require_server

__all__ = ["AmqpMessage", "AmqpPeer", "amqp_url", "free_url", "restart"]

ROOT = Path(__file__).resolve().parents[2]


def amqp_url() -> str:
    """The test broker's AMQP URL (skip or fail without it, as for every test server)."""
    return require_server("ERPBRIDGE_TEST_AMQP_URL", "RabbitMQ (scripts/rabbitmq.sh)")


def free_url(scheme: str) -> str:
    """A URL of ``scheme`` on a port of 127.0.0.1 where nothing listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"{scheme}://guest:guest@127.0.0.1:{port}/"


def restart(script: str, url: str) -> str:
    """Kill the broker of ``url`` (``rabbitmq`` or ``nats``) and start it again on its data."""
    port = str(urlsplit(url).port)
    variable = {"rabbitmq": "ERPBRIDGE_RABBITMQ_PORT", "nats": "ERPBRIDGE_NATS_PORT"}[script]
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / f"{script}.sh"), "restart"],
        env={**os.environ, variable: port},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return started.stdout.strip()


@dataclass(frozen=True)
class AmqpMessage:
    """One message as a consumer of the queue got it."""

    body: bytes
    message_id: str | None
    routing_key: str
    headers: dict[str, Any]
    content_type: str | None
    persistent: bool


class AmqpPeer:
    """A partner's client on the test broker: declares queues, publishes, drains."""

    def __init__(self, url: str) -> None:
        self.url = url

    def queue(self, **arguments: Any) -> str:
        """A new durable queue of its own (a fresh name), with ``arguments``."""
        name = f"t-{uuid.uuid4().hex[:12]}"

        async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
            await channel.declare_queue(name, durable=True, arguments=arguments or None)

        self._with_channel(declare)
        return name

    def publish(
        self, queue: str, bodies: Sequence[bytes], message_ids: Sequence[str | None] = ()
    ) -> None:
        """Publish ``bodies`` to ``queue`` (persistent, confirmed), in this order."""
        ids = list(message_ids) or [None] * len(bodies)

        async def send(channel: aio_pika.abc.AbstractChannel) -> None:
            exchange = channel.default_exchange
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body, message_id=i, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        queue,
                    )
                    for body, i in zip(bodies, ids, strict=True)
                )
            )

        self._with_channel(send, confirms=True)

    def count(self, queue: str) -> int:
        """Messages ready in ``queue`` (not delivered to a consumer)."""

        async def ask(channel: aio_pika.abc.AbstractChannel) -> int:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)

        return self._with_channel(ask)

    def drain(self, queue: str) -> list[AmqpMessage]:
        """Every message ready in ``queue``, in order, taken off it."""

        async def take(channel: aio_pika.abc.AbstractChannel) -> list[AmqpMessage]:
            await channel.set_qos(prefetch_count=1000)
            declared = await channel.declare_queue(queue, passive=True)
            ready = int(declared.declaration_result.message_count or 0)
            got: list[AmqpMessage] = []
            if not ready:
                return got
            done = asyncio.Event()

            async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                got.append(
                    AmqpMessage(
                        message.body,
                        message.message_id,
                        message.routing_key or "",
                        dict(message.headers),
                        message.content_type,
                        message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                    )
                )
                if len(got) == ready:
                    done.set()

            tag = await declared.consume(keep, no_ack=True)
            await asyncio.wait_for(done.wait(), 60)
            await declared.cancel(tag)
            return got

        return self._with_channel(take)

    def delete(self, queue: str) -> None:
        async def drop(channel: aio_pika.abc.AbstractChannel) -> None:
            await channel.queue_delete(queue)

        self._with_channel(drop)

    def _with_channel(self, work: Any, *, confirms: bool = False) -> Any:
        async def run() -> Any:
            connection = await aio_pika.connect(self.url, timeout=10)
            try:
                channel = await connection.channel(publisher_confirms=confirms)
                return await work(channel)
            finally:
                await connection.close()

        return asyncio.run(run())
