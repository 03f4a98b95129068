"""The ``amqp`` transport's side of the broker: one connection on the transport's own event
loop, and aio-pika's exceptions translated into the engine's three kinds, naming the place."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc
import aio_pika.exceptions as amqp_errors
from aiormq.exceptions import ChannelAccessRefused
from yarl import URL

from erpbridge.errors import ErpbridgeError, RetriableError
from erpbridge.transports.amqp.options import PASSWORD, AmqpChannelOptions
from erpbridge.transports.brokers import BrokerRefused, BrokerUnavailable

__all__ = ["Broker", "broker_where", "classify"]


def broker_where(url: str) -> str:
    """``host:port/vhost`` of a broker URL: the place every message names (no credentials)."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    vhost = parts.path[1:] if len(parts.path) > 1 else "/"
    return f"{parts.hostname}:{port} vhost {vhost}"


def classify(exc: BaseException, where: str) -> ErpbridgeError:
    """``exc`` (aio-pika, aiormq, socket) as the engine's kind of error, with the place."""
    if isinstance(exc, ErpbridgeError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, amqp_errors.AMQPConnectionError) and exc.args:
        # aiormq passes the socket error's number and text on, not the error itself.
        if exc.args[0] == errno.ECONNREFUSED:
            return BrokerUnavailable(f"{where}: connection refused ({text})", "refused")
        if isinstance(exc.args[0], socket.gaierror):
            return BrokerUnavailable(f"{where}: the host is not known ({text})", "dns")
    if isinstance(exc, amqp_errors.ProbableAuthenticationError | amqp_errors.AuthenticationError):
        return BrokerRefused(f"{where}: the broker refused the login ({text})", "auth")
    if isinstance(exc, ChannelAccessRefused):
        return BrokerRefused(f"{where}: access refused: {text}", "forbidden")
    if isinstance(exc, amqp_errors.ChannelNotFoundEntity):
        return BrokerRefused(f"{where}: not found: {text}", "schema")
    if isinstance(exc, amqp_errors.ChannelPreconditionFailed):
        return BrokerRefused(f"{where}: the broker refused the declaration: {text}", "schema")
    if isinstance(exc, amqp_errors.PublishError):
        return BrokerRefused(
            f"{where}: no queue takes the message (unroutable, returned by the broker): {text}",
            "schema",
        )
    if isinstance(exc, amqp_errors.DeliveryError):
        return BrokerUnavailable(
            f"{where}: the broker refused the message (nack): {text}; it is sent again", "error"
        )
    if isinstance(exc, socket.gaierror):
        return BrokerUnavailable(f"{where}: the host is not known ({text})", "dns")
    if isinstance(exc, ConnectionRefusedError):
        return BrokerUnavailable(f"{where}: connection refused ({text})", "refused")
    if isinstance(exc, ssl.SSLError):
        return BrokerUnavailable(f"{where}: TLS failed ({text})", "tls")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return BrokerUnavailable(f"{where}: the broker did not answer in time ({text})", "timeout")
    if isinstance(exc, amqp_errors.AMQPError | ConnectionError | OSError | RuntimeError):
        return BrokerUnavailable(f"{where}: the broker connection failed ({text})", "error")
    return RetriableError(f"{where}: {type(exc).__name__}: {text}")


class Broker:
    """One connection to the channel's broker, opened on first use and again after a failure.

    Runs on the transport's event loop only (:class:`~erpbridge.transports.aioloop.LoopThread`).
    """

    def __init__(self, options: AmqpChannelOptions) -> None:
        self._options = options
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._lock: asyncio.Lock | None = None

    def url(self) -> URL:
        """The URL to connect with: the password from the credentials, the heartbeat."""
        url = URL(self._options.url)
        if PASSWORD in self._options.credentials:
            url = url.with_password(self._options.credentials[PASSWORD].get_secret_value())
        if "heartbeat" not in url.query:
            url = url.update_query(heartbeat=self._options.heartbeat_s)
        return url

    async def connection(self) -> aio_pika.abc.AbstractConnection:
        """The open connection (a new one when there is none or it was lost)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await self._connect()
            return self._connection

    async def _connect(self) -> aio_pika.abc.AbstractConnection:
        # As aio_pika.connect does, but a connection that failed to open is closed here: left
        # to the garbage collector, its __del__ starts a close on whatever thread collects it,
        # outside any event loop (a coroutine never awaited).
        connection = aio_pika.Connection(self.url())
        try:
            await connection.connect(timeout=self._options.connect_timeout_s)
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        return connection

    def server(self) -> str:
        """``RabbitMQ 3.10.8`` (product and version the broker announced)."""
        connection = self._connection
        if connection is None or connection.transport is None:
            return "AMQP broker"
        properties = connection.transport.connection.server_properties or {}
        words = [properties.get("product", "AMQP broker"), properties.get("version", "")]
        return " ".join(w.decode() if isinstance(w, bytes) else str(w) for w in words).strip()

    async def reset(self) -> None:
        """Drop the connection (after a failure): the next use opens a new one."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            # It is being dropped because it failed: closing may fail as well.
            with contextlib.suppress(TimeoutError, amqp_errors.AMQPError, OSError, RuntimeError):
                await connection.close()
