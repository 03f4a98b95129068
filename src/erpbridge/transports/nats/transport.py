"""The ``nats`` transport: NATS JetStream streams through nats-py.

IN: a run reads the flow's ``stream`` through its durable pull ``consumer`` (created when
missing, explicit acknowledgement). Each batch is acknowledged only after the engine has
committed it; the consumer lets at most one batch be unacknowledged (``max_ack_pending``), so
after a crash the unacknowledged batch comes again (after ``ack_wait_s``) before anything newer
and per-key order holds. A batch committed whose acknowledgements were lost comes again too: the
flow's cursor keeps the stream sequences of the last ``dedup_window`` committed messages, and a
message among them is acknowledged and skipped. A body that is not a JSON object and a record
the mapping refuses are rejections, acknowledged with their batch (dead-lettered into the hub's
rejections). A run ends when no message came for ``wait_s`` or after ``max_run_s``; a run that
stops before its commit gives its messages back at once (a negative acknowledgement).

OUT: each record version is one JSON message to the templated ``subject`` with its headers; its
``Nats-Msg-Id`` is the delivery's idempotency key, so JetStream stores a repeated publish (a
retry after a lost acknowledgement) once within the stream's duplicate window. A write returns
only when JetStream acknowledged every message (stored in a stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import nats.errors as nats_errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from erpbridge.connectors import Sink, Source
from erpbridge.errors import ErpbridgeError, FatalError
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
    outgoing_values,
    seen_ids,
)
from erpbridge.transports.nats.options import (
    NatsChannelOptions,
    NatsStreamOptions,
    NatsTargetOptions,
)
from erpbridge.transports.nats.server import Server, classify, server_where
from erpbridge.transports.templates import render

__all__ = ["NatsTransport"]


#: The header JetStream de-duplicates publishes by.
MSG_ID = "Nats-Msg-Id"
#: How long one pull waits for messages (see ``_fetch``).
_PULL_S = 0.05
#: How long messages a run gives back wait before they are delivered again.
_GIVE_BACK_DELAY_S = 0.1


class NatsTransport(Source[NatsStreamOptions], Sink[NatsTargetOptions]):
    """Reads a JetStream stream through a durable consumer (IN) and publishes acknowledged,
    de-duplicated messages (OUT) on one NATS server."""

    channel_options = NatsChannelOptions
    stream_options = NatsStreamOptions
    target_options = NatsTargetOptions

    def __init__(self, channel: str, options: NatsChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        self._where = f"channel {channel}: NATS {server_where(options.url)}"
        self._server = Server(options)
        self._calls = BrokerCalls(f"nats-{channel}", self._where, classify, self._server.reset)

    def _timeout(self) -> float:
        return self._options.connect_timeout_s + self._options.publish_timeout_s

    # -- IN --------------------------------------------------------------------------------------

    def read(
        self,
        stream: NatsStreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Read ``stream.stream`` through its durable consumer; each batch acknowledged after
        its commit."""
        seen = Seen(seen_ids(cursor), stream.dedup_window)
        doing = f"stream {stream.stream} consumer {stream.consumer}"
        subscription = self._calls.run(
            lambda: self._subscribe(stream, batch_size), self._timeout(), doing
        )
        unacknowledged: list[Msg] = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < stream.max_run_s:
                messages = self._calls.run(
                    lambda: self._fetch(subscription, batch_size, stream.wait_s),
                    stream.wait_s + self._timeout(),
                    doing,
                )
                if not messages:
                    return
                # The engine acknowledges each batch before it asks for the next, or none.
                unacknowledged.extend(messages)
                batch = self._batch(stream, messages, seen, doing)
                batch.on_commit.append(unacknowledged.clear)
                yield batch
        finally:
            if self._calls.running and unacknowledged:
                # Given back at once rather than after ack_wait_s; a connection that is gone
                # gives them back by itself after ack_wait_s.
                with contextlib.suppress(ErpbridgeError):
                    self._calls.run(lambda: self._give_back(unacknowledged), self._timeout(), doing)
            if self._calls.running:
                with contextlib.suppress(ErpbridgeError):
                    self._calls.run(subscription.unsubscribe, self._timeout(), doing)

    async def _subscribe(
        self, stream: NatsStreamOptions, batch_size: int
    ) -> JetStreamContext.PullSubscription:
        js = await self._server.jetstream()
        try:
            await js.consumer_info(stream.stream, stream.consumer)
        except NotFoundError:
            await js.add_consumer(
                stream.stream,
                ConsumerConfig(
                    durable_name=stream.consumer,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=stream.ack_wait_s,
                    deliver_policy=(
                        DeliverPolicy.NEW if stream.deliver == "new" else DeliverPolicy.ALL
                    ),
                    filter_subject=stream.subject,
                    max_ack_pending=stream.max_ack_pending or batch_size,
                ),
            )
        return await js.pull_subscribe_bind(durable=stream.consumer, stream=stream.stream)

    async def _fetch(
        self, subscription: JetStreamContext.PullSubscription, size: int, wait_s: float
    ) -> list[Msg]:
        """Up to ``size`` messages; none when none came within ``wait_s``.

        Short pulls, one after the other: a long one holds what came first until it is full or
        expires (the latency a lone message would pay)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                got = await subscription.fetch(size, timeout=min(_PULL_S, wait_s))
            except (TimeoutError, nats_errors.TimeoutError):
                got = []
            if got:
                return got
            # Nothing came, or the connection is gone (a fetch cannot tell): ask the client.
            if not self._server.client.is_connected:
                raise nats_errors.ConnectionClosedError
            if time.monotonic() >= deadline:
                return []

    def _batch(
        self, stream: NatsStreamOptions, messages: list[Msg], seen: Seen, doing: str
    ) -> Batch:
        incoming = []
        for message in messages:
            sequence = message.metadata.sequence.stream
            about = {"subject": message.subject, "message_id": (message.headers or {}).get(MSG_ID)}
            position = f"stream {stream.stream} sequence {sequence}"
            incoming.append(Incoming(str(sequence), position, message.data, about))
        batch = batch_of(incoming, seen, f"stream {stream.stream}")

        def acknowledge() -> None:
            self._calls.run(
                lambda: self._acknowledge(messages),
                self._timeout(),
                f"{doing}, acknowledging {len(messages)} committed message(s) (they come "
                "again and are skipped as duplicates)",
            )

        batch.on_commit.append(acknowledge)
        return batch

    async def _acknowledge(self, messages: list[Msg]) -> None:
        for message in messages:
            await message.ack()
        # The acknowledgements are on the wire before the next fetch asks for more.
        await self._flush()

    async def _give_back(self, messages: list[Msg]) -> None:
        # After a short delay: the run's last pull request (its fetch just timed out) may still
        # be open on the server for a moment, and an immediate redelivery would go to it.
        for message in messages:
            await message.nak(delay=_GIVE_BACK_DELAY_S)
        await self._flush()

    async def _flush(self) -> None:
        await self._server.client.flush(timeout=max(1, round(self._options.publish_timeout_s)))

    # -- OUT -------------------------------------------------------------------------------------

    def write(self, target: NatsTargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Publish each record as one message; return once JetStream stored them all."""
        if not records:
            return []
        messages = [self._message(target, record) for record in records]
        doing = f"subject {messages[0][0]}" if len(messages) == 1 else "publishing"
        if len(records) == 1:
            record = records[0]
            doing += f", {record.entity} {record.key} v{record.version}"
        self._calls.run(lambda: self._publish(target, messages), self._timeout(), doing)
        return [None] * len(records)

    def _message(
        self, target: NatsTargetOptions, record: OutgoingRecord
    ) -> tuple[str, bytes, dict[str, str]]:
        values = outgoing_values(record)
        about = f"{self._where}: {record.entity} {record.key} v{record.version}"
        try:
            subject = str(render(target.subject, values))
            headers = {name: str(render(v, values)) for name, v in target.headers.items()}
        except FatalError as exc:
            raise FatalError(f"{about}: {exc}") from exc
        if not subject or any(c in subject for c in " \t\r\n*>") or ".." in subject:
            raise FatalError(f"{about}: {subject!r} is not a subject to publish to")
        headers.update(
            {
                MSG_ID: record.idempotency_key,
                "Content-Type": "application/json",
                "Erpbridge-Entity": record.entity,
                "Erpbridge-Key": record.key,
                "Erpbridge-Version": str(record.version),
            }
        )
        return subject, body_of(record), headers

    async def _publish(
        self, target: NatsTargetOptions, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> None:
        js = await self._server.jetstream()
        timeout = self._options.publish_timeout_s
        # A write holds one version per record key (the worker sends a key's versions one at a
        # time), so its messages may be acknowledged in any order.
        results = await asyncio.gather(
            *(
                js.publish(subject, body, timeout=timeout, stream=target.stream, headers=headers)
                for subject, body, headers in messages
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    # -- health and closing ----------------------------------------------------------------------

    def health(self) -> Health:
        """Connect and ask JetStream for the account; say which server answered."""

        async def check() -> str:
            js = await self._server.jetstream()
            account = await js.account_info()
            return f"{self._server.version()} with JetStream ({account.streams} stream(s))"

        return self._calls.health(check, self._timeout(), server_where(self._options.url))

    def close(self) -> None:
        """Close the connection and stop the transport's event loop."""
        self._calls.close(self._options.connect_timeout_s)
