"""The ``amqp`` transport: RabbitMQ (AMQP 0-9-1) queues IN, exchanges OUT, through aio-pika.

IN: a run consumes the flow's ``queue`` with manual acknowledgement. Each batch is
acknowledged (one ``basic.ack``, ``multiple``) only after the engine has committed it, so a run
that dies before its commit loses nothing: the broker delivers those messages again. A batch
committed whose acknowledgement was lost comes again too; the flow's cursor keeps the ids of the
last ``dedup_window`` committed messages, and a message among them is acknowledged and skipped.
A body that is not a JSON object is a rejection (with the body), and a record the mapping
refuses is one as well: both are acknowledged with their batch, i.e. dead-lettered into the
hub's rejections. A run ends when the queue stayed empty for ``wait_s`` or after ``max_run_s``.

OUT: each record version is one persistent JSON message to ``exchange`` with a templated
``routing_key`` and ``headers``; its ``message_id`` is the delivery's idempotency key (the
consumer's de-duplication key) and the headers carry the hub's key, version and entity. The
channel runs in publisher-confirm mode: a write returns only when the broker confirmed every
message (a nack or a lost connection is retried; an unroutable message, with ``mandatory``, is a
permanent error). The worker sends one version per record key at a time, and one write's
messages go out on one channel in order, so per-key order holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.abc

from erpbridge.connectors import Sink, Source
from erpbridge.errors import ErpbridgeError, FatalError
from erpbridge.transports.amqp.broker import Broker, broker_where, classify
from erpbridge.transports.amqp.options import (
    AmqpChannelOptions,
    AmqpStreamOptions,
    AmqpTargetOptions,
)
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
)
from erpbridge.transports.brokers import BrokerCalls
from erpbridge.transports.messages import (
    Incoming,
    Seen,
    batch_of,
    body_of,
    message_id_of,
    outgoing_values,
    seen_ids,
)
from erpbridge.transports.templates import render

__all__ = ["AmqpTransport"]


#: After a batch's first message, how long more messages may trickle in before the batch is
#: cut (short: it is the latency a lone message pays on its way to the commit).
_LINGER_S = 0.02
#: How often a wait for messages looks whether the connection is still there.
_POLL_S = 0.1


@dataclass
class _Consumer:
    """One run's consumer: its channel, the messages delivered and not yet taken."""

    channel: aio_pika.abc.AbstractChannel
    queue: aio_pika.abc.AbstractQueue
    buffer: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = field(
        default_factory=asyncio.Queue
    )
    tag: str = ""

    async def take(self, size: int, wait_s: float) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Up to ``size`` messages in queue order; none when none came within ``wait_s``."""
        taken: list[aio_pika.abc.AbstractIncomingMessage] = []
        deadline = time.monotonic() + wait_s
        while len(taken) < size:
            if self.channel.is_closed:
                raise ConnectionError("the channel was closed by the broker or the network")
            try:
                taken.append(self.buffer.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            if taken:
                deadline = min(deadline, time.monotonic() + _LINGER_S)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                taken.append(await asyncio.wait_for(self.buffer.get(), min(left, _POLL_S)))
            except TimeoutError:
                continue
        taken.sort(key=lambda message: message.delivery_tag or 0)
        return taken

    async def close(self) -> None:
        """Stop consuming; what was delivered and not acknowledged goes back to the queue."""
        if not self.channel.is_closed:
            await self.channel.close()


class AmqpTransport(Source[AmqpStreamOptions], Sink[AmqpTargetOptions]):
    """Consumes a queue (IN) and publishes confirmed messages (OUT) on one RabbitMQ broker."""

    channel_options = AmqpChannelOptions
    stream_options = AmqpStreamOptions
    target_options = AmqpTargetOptions

    def __init__(self, channel: str, options: AmqpChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        self._where = f"channel {channel}: broker {broker_where(options.url)}"
        self._broker = Broker(options)
        self._calls = BrokerCalls(f"amqp-{channel}", self._where, classify, self._reset)
        self._publisher: aio_pika.abc.AbstractChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}

    async def _reset(self) -> None:
        await self._broker.reset()
        self._publisher = None
        self._exchanges.clear()

    def _timeout(self) -> float:
        return self._options.connect_timeout_s + self._options.confirm_timeout_s

    # -- IN --------------------------------------------------------------------------------------

    def read(
        self,
        stream: AmqpStreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Consume ``stream.queue`` in batches; each acknowledged after its commit."""
        seen = Seen(seen_ids(cursor), stream.dedup_window)
        doing = f"queue {stream.queue}"
        consumer = self._calls.run(
            lambda: self._consume(stream, batch_size), self._timeout(), doing
        )
        started = time.monotonic()
        try:
            while time.monotonic() - started < stream.max_run_s:
                messages = self._calls.run(
                    lambda: consumer.take(batch_size, stream.wait_s),
                    stream.wait_s + self._timeout(),
                    doing,
                )
                if not messages:
                    return
                yield self._batch(stream, consumer, messages, seen)
        finally:
            if self._calls.running:
                # A connection that is gone: the broker requeued what was not acknowledged.
                with contextlib.suppress(ErpbridgeError):
                    self._calls.run(consumer.close, self._timeout(), doing)

    async def _consume(self, stream: AmqpStreamOptions, batch_size: int) -> _Consumer:
        connection = await self._broker.connection()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=stream.prefetch or min(2 * batch_size, 65535))
        if stream.declare:
            queue = await channel.declare_queue(
                stream.queue, durable=True, arguments=stream.arguments or None
            )
        else:
            queue = await channel.get_queue(stream.queue, ensure=True)
        for binding in stream.bind:
            await queue.bind(binding.exchange, binding.routing_key)
        consumer = _Consumer(channel, queue)

        async def deliver(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            consumer.buffer.put_nowait(message)

        consumer.tag = await queue.consume(deliver, no_ack=False)
        return consumer

    def _batch(
        self,
        stream: AmqpStreamOptions,
        consumer: _Consumer,
        messages: list[aio_pika.abc.AbstractIncomingMessage],
        seen: Seen,
    ) -> Batch:
        incoming = []
        for message in messages:
            message_id = message_id_of(message.message_id, message.body)
            about = {"message_id": message_id, "routing_key": message.routing_key or ""}
            position = f"queue {stream.queue} message {message_id}"
            incoming.append(Incoming(message_id, position, message.body, about))
        batch = batch_of(incoming, seen, f"queue {stream.queue}")
        last = messages[-1]
        count = len(messages)

        def acknowledge() -> None:
            self._calls.run(
                lambda: last.ack(multiple=True),
                self._timeout(),
                f"queue {stream.queue}, acknowledging {count} committed message(s) (they "
                "come again and are skipped as duplicates)",
            )

        batch.on_commit.append(acknowledge)
        return batch

    # -- OUT -------------------------------------------------------------------------------------

    def write(self, target: AmqpTargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Publish each record as one message; return once the broker confirmed them all."""
        if not records:
            return []
        messages = [self._message(target, record) for record in records]
        doing = f"exchange {target.exchange or '(default)'}"
        if len(records) == 1:
            record = records[0]
            doing += f", {record.entity} {record.key} v{record.version}"
        self._calls.run(lambda: self._publish(target, messages), self._timeout(), doing)
        return [None] * len(records)

    def _message(
        self, target: AmqpTargetOptions, record: OutgoingRecord
    ) -> tuple[str, aio_pika.Message]:
        values = outgoing_values(record)
        try:
            routing_key = str(render(target.routing_key, values))
            headers = {name: _header(render(v, values)) for name, v in target.headers.items()}
        except FatalError as exc:
            raise FatalError(
                f"{self._where}: {record.entity} {record.key} v{record.version}: {exc}"
            ) from exc
        if len(routing_key.encode()) > 255:
            raise FatalError(
                f"{self._where}: {record.entity} {record.key} v{record.version}: the routing key "
                f"is longer than 255 bytes: {routing_key[:80]}…"
            )
        headers.update(
            {
                "x-erpbridge-entity": record.entity,
                "x-erpbridge-key": record.key,
                "x-erpbridge-version": record.version,
            }
        )
        message = aio_pika.Message(
            body_of(record),
            content_type="application/json",
            message_id=record.idempotency_key,
            headers=headers,
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT
                if target.persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
        )
        return routing_key, message

    async def _publish(
        self, target: AmqpTargetOptions, messages: list[tuple[str, aio_pika.Message]]
    ) -> None:
        exchange = await self._exchange(target)
        timeout = self._options.confirm_timeout_s
        # Started in order: aiormq sends them in the order they take the channel's lock, which
        # is this order; the confirms are awaited together.
        results = await asyncio.gather(
            *(
                exchange.publish(message, key, mandatory=target.mandatory, timeout=timeout)
                for key, message in messages
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # One error for the write (the worker retries or splits the batch by its kind).
            raise failures[0]

    async def _exchange(self, target: AmqpTargetOptions) -> aio_pika.abc.AbstractExchange:
        if self._publisher is None or self._publisher.is_closed:
            connection = await self._broker.connection()
            self._publisher = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._exchanges.clear()
        if target.exchange == "":
            return self._publisher.default_exchange
        exchange = self._exchanges.get(target.exchange)
        if exchange is None:
            if target.exchange_type is not None:
                exchange = await self._publisher.declare_exchange(
                    target.exchange, aio_pika.ExchangeType(target.exchange_type), durable=True
                )
            else:
                exchange = await self._publisher.get_exchange(target.exchange, ensure=True)
            self._exchanges[target.exchange] = exchange
        return exchange

    # -- health and closing ----------------------------------------------------------------------

    def health(self) -> Health:
        """Log in and open a channel; say which broker answered, or what failed."""

        async def check() -> str:
            connection = await self._broker.connection()
            channel = await connection.channel()
            await channel.close()
            return self._broker.server()

        return self._calls.health(check, self._timeout(), broker_where(self._options.url))

    def close(self) -> None:
        """Close the connection and stop the transport's event loop."""
        self._calls.close(self._options.connect_timeout_s)


def _header(value: Any) -> Any:
    """A rendered header value in a type AMQP tables carry (others as text)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
