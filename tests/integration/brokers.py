"""The message brokers of the streaming transports' tests, as a partner system uses them.

RabbitMQ comes from ``scripts/rabbitmq.sh`` (``ERPBRIDGE_TEST_AMQP_URL``), NATS with JetStream
from ``scripts/nats.sh`` (``ERPBRIDGE_TEST_NATS_URL``). :class:`AmqpPeer` is the other side of an
``amqp`` channel: its own aio-pika connection per call, so what it sees is what the broker holds,
not what the transport under test believes. :func:`restart` kills a broker as a crash would and
starts it again on its data (the scripts' ``restart``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc
import nats
import orjson
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from sqlalchemy import Engine, func, select

from erpbridge.engine.worker import Worker
from erpbridge.store.tables import deliveries, records
from integration.servers import require_server

__all__ = [
    "AmqpMessage",
    "AmqpPeer",
    "NatsMessage",
    "NatsPeer",
    "amqp_url",
    "customers",
    "deliver_all",
    "free_url",
    "hub_records",
    "interleaved",
    "kill_mid_stream_and_resume",
    "nats_url",
    "restart",
]

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
        timeout=180,
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


def nats_url() -> str:
    """The test server's NATS URL (skip or fail without it, as for every test server)."""
    return require_server("ERPBRIDGE_TEST_NATS_URL", "NATS with JetStream (scripts/nats.sh)")


@dataclass(frozen=True)
class NatsMessage:
    """One message as a stream holds it."""

    subject: str
    data: bytes
    headers: dict[str, str]
    sequence: int


class NatsPeer:
    """A partner's client on the test server: streams of its own, publishes, reads back."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stream(self, **config: Any) -> str:
        """A new stream of its own (a fresh name) storing ``<name>.>``."""
        name = f"T{uuid.uuid4().hex[:12]}"

        async def add(js: JetStreamContext) -> None:
            await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], **config))

        self._with(add)
        return name

    def publish(
        self, subject: str, bodies: Sequence[bytes], message_ids: Sequence[str | None] = ()
    ) -> None:
        """Publish ``bodies`` to ``subject`` (each acknowledged by JetStream), in this order."""
        ids = list(message_ids) or [None] * len(bodies)

        async def send(js: JetStreamContext) -> None:
            for start in range(0, len(bodies), 500):
                await asyncio.gather(
                    *(
                        js.publish(subject, body, headers={"Nats-Msg-Id": i} if i else None)
                        for body, i in zip(
                            bodies[start : start + 500], ids[start : start + 500], strict=True
                        )
                    )
                )

        self._with(send)

    def messages(self, stream: str) -> list[NatsMessage]:
        """Every message ``stream`` holds, in order, through a consumer of the test's own that
        acknowledges nothing the hub's consumers see."""

        async def read(js: JetStreamContext) -> list[NatsMessage]:
            info = await js.stream_info(stream)
            reader = await js.pull_subscribe(
                "", durable=None, stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE)
            )
            got: list[NatsMessage] = []
            while len(got) < info.state.messages:
                for raw in await reader.fetch(1000, timeout=5):
                    sequence = raw.metadata.sequence.stream
                    headers = dict(raw.headers or {})
                    got.append(NatsMessage(raw.subject, raw.data, headers, sequence))
            await reader.unsubscribe()
            return got

        return self._with(read)

    def pending(self, stream: str, consumer: str) -> tuple[int, int]:
        """(messages not yet delivered, delivered and not acknowledged) of a consumer."""

        async def ask(js: JetStreamContext) -> tuple[int, int]:
            info = await js.consumer_info(stream, consumer)
            return int(info.num_pending or 0), int(info.num_ack_pending or 0)

        return self._with(ask)

    def _with(self, work: Any) -> Any:
        async def run() -> Any:
            client = await nats.connect(self.url, connect_timeout=10, allow_reconnect=False)
            try:
                return await work(client.jetstream(timeout=30))
            finally:
                await client.close()

        return asyncio.run(run())


# -- the hub's side in the streaming tests ---------------------------------------------------------


def customers(keys: Iterable[Any], name: str = "Customer {key}") -> list[bytes]:
    """One JSON message body per key: ``{"id": key, "name": name}``."""
    return [orjson.dumps({"id": str(k), "name": name.format(key=k)}) for k in keys]


def hub_records(hub: Engine) -> dict[str, tuple[int, dict[str, Any]]]:
    """The hub's records: key -> (version, payload)."""
    with hub.connect() as conn:
        rows = conn.execute(select(records.c.key, records.c.version, records.c.payload))
        return {key: (version, orjson.loads(payload)) for key, version, payload in rows}


def deliver_all(worker: Worker, until: float = 60) -> None:
    """Run the worker until every delivery is delivered (retries wait out their backoff)."""
    deadline = time.monotonic() + until
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        worker.run_once()
        with worker.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            )
            states = {str(state): int(count) for state, count in rows}
        if set(states) <= {"delivered"}:
            return
        time.sleep(0.1)
    with worker.engine.connect() as conn:
        reasons = conn.execute(
            select(deliveries.c.state, deliveries.c.last_error, func.count())
            .where(deliveries.c.state != "delivered")
            .group_by(deliveries.c.state, deliveries.c.last_error)
            .limit(5)
        ).all()
    # The reasons name the cause when this fails in CI, where the hub's file is gone afterwards.
    raise AssertionError(
        f"deliveries not all delivered after {until} s: {states}; why: "
        + "; ".join(f"{count} {state}: {error}" for state, error, count in reasons)
    )


def interleaved(keys: Sequence[str]) -> list[bytes]:
    """Two versions of each key, one right after the other: ``first K``, ``second K``."""
    return [b for k in keys for b in customers([k], "first {key}") + customers([k], "second {key}")]


def kill_mid_stream_and_resume(root: Path, config: str, env: dict[str, str], keys: int) -> int:
    """Serve ``config`` with ``erpbridge run`` (its IN flow on an interval), SIGKILL it once a
    part of the ``keys`` is in the hub, serve it again until every key holds version 2.
    Returns how many keys the hub held when the process was killed."""
    from hubprocess import serve_hub

    def held() -> dict[str, int]:
        with sqlite3.connect(root / "erpbridge.db") as db:
            return dict(db.execute("SELECT key, version FROM records").fetchall())

    def until(done: Callable[[dict[str, int]], bool], what: str) -> dict[str, int]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.Error):  # the store is being created
                now = held()
                if done(now):
                    return now
            time.sleep(0.05)
        raise AssertionError(f"{what} within 90 s: {len(held())} keys in the hub")

    with serve_hub(root, config, command="run", env=env) as served:
        at_kill = until(lambda now: len(now) >= keys // 5, "part of the stream not consumed")
        served.stop(signal.SIGKILL)
    assert len(at_kill) < keys, "the stream was consumed before the kill"
    with serve_hub(root, config, command="run", env=env):
        final = until(
            lambda now: len(now) == keys and set(now.values()) == {2},
            "not every key at version 2",
        )
    assert set(final.values()) == {2}, "a redelivered message was applied again"
    return len(at_kill)
