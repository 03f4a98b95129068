"""The ``nats`` transport's side of the server: one connection on the transport's own event
loop (no automatic reconnection: a lost connection fails the call that needs it and the next
call connects again), the streams the channel makes sure of, and nats-py's exceptions as the
engine's three kinds, naming the place."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from urllib.parse import urlsplit

import nats
import nats.errors as nats_errors
import nats.js.errors as js_errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from erpbridge.errors import ErpbridgeError, RetriableError
from erpbridge.transports.brokers import BrokerRefused, BrokerUnavailable
from erpbridge.transports.nats.options import PASSWORD, TOKEN, NatsChannelOptions

__all__ = ["Server", "classify", "server_where"]


def server_where(url: str) -> str:
    """``host:port`` of a NATS URL: the place every message names (no credentials)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 4222}"


def classify(exc: BaseException, where: str) -> ErpbridgeError:
    """``exc`` (nats-py, socket) as the engine's kind of error, with the place."""
    if isinstance(exc, ErpbridgeError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, nats_errors.AuthorizationError):
        return BrokerRefused(f"{where}: the server refused the login ({text})", "auth")
    if isinstance(exc, nats_errors.MaxPayloadError):
        return BrokerRefused(
            f"{where}: the message is larger than the server takes ({text})", "error"
        )
    if isinstance(exc, js_errors.NoStreamResponseError):
        return BrokerRefused(f"{where}: no stream stores this subject ({text})", "schema")
    if isinstance(exc, js_errors.NotFoundError):
        return BrokerRefused(f"{where}: not found: {text}", "schema")
    if isinstance(exc, js_errors.APIError):
        if "message size" in text:  # larger than the stream's max_msg_size: this one record
            return BrokerRefused(f"{where}: the stream refused the message: {text}", "error")
        if "maximum" in text:  # a full stream (discard new): passing, retried
            return BrokerUnavailable(f"{where}: the stream refused the message: {text}", "error")
        if isinstance(exc, js_errors.ServiceUnavailableError | js_errors.ServerError):
            return BrokerUnavailable(f"{where}: JetStream is not available now: {text}", "error")
        return BrokerRefused(f"{where}: JetStream refused the request: {text}", "protocol")
    if isinstance(exc, socket.gaierror):
        return BrokerUnavailable(f"{where}: the host is not known ({text})", "dns")
    if isinstance(exc, ConnectionRefusedError | nats_errors.NoServersError):
        return BrokerUnavailable(f"{where}: connection refused ({text})", "refused")
    if isinstance(exc, ssl.SSLError | nats_errors.SecureConnFailedError):
        return BrokerUnavailable(f"{where}: TLS failed ({text})", "tls")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | nats_errors.TimeoutError):
        return BrokerUnavailable(f"{where}: the server did not answer in time ({text})", "timeout")
    if isinstance(exc, nats_errors.Error | ConnectionError | OSError):
        return BrokerUnavailable(f"{where}: the connection failed ({text})", "error")
    return RetriableError(f"{where}: {type(exc).__name__}: {text}")


class Server:
    """One connection to the channel's server, opened on first use and again after a failure;
    the channel's ``streams`` are created (when missing) once per connection.

    Runs on the transport's event loop only (:class:`~erpbridge.transports.aioloop.LoopThread`).
    """

    def __init__(self, options: NatsChannelOptions) -> None:
        self._options = options
        self._client: Client | None = None
        self._lock: asyncio.Lock | None = None
        self._last_error: Exception | None = None
        self._failed = asyncio.Event()

    async def jetstream(self) -> JetStreamContext:
        """JetStream on the open connection (a new one when there is none or it was lost)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None or self._client.is_closed or not self._client.is_connected:
                await self._drop()
                self._client = await self._connect()
                await self._make_streams(self._client.jetstream())
            return self._client.jetstream(timeout=self._options.publish_timeout_s)

    async def _connect(self) -> Client:
        options = self._options
        secret = options.credentials
        self._last_error = None
        connecting = nats.connect(
            options.url,
            user=options.user,
            password=secret[PASSWORD].get_secret_value() if PASSWORD in secret else None,
            token=secret[TOKEN].get_secret_value() if TOKEN in secret else None,
            connect_timeout=max(1, round(options.connect_timeout_s)),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=self._error,
            name="erpbridge",
        )
        # nats-py tries a refused or unknown server again and again on its own: the first
        # such error ends the wait (its callback sets _failed), else connect_timeout_s does.
        self._failed = asyncio.Event()
        task = asyncio.ensure_future(connecting)
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait(
                {task, failed},
                timeout=options.connect_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            failed.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, nats_errors.Error, OSError):
            await task
        if self._last_error is not None:
            raise self._last_error
        raise TimeoutError(f"no connection within {options.connect_timeout_s:g} s")

    async def _error(self, exc: Exception) -> None:
        # nats-py reports a connection problem here (and raises it from the call that needs the
        # connection, where it is translated with its place): kept for a connect that never
        # ends, not logged a second time without the place by nats-py's default callback.
        self._last_error = exc
        if isinstance(exc, OSError):  # refused, unknown host, unreachable: not worth waiting
            self._failed.set()

    async def _make_streams(self, js: JetStreamContext) -> None:
        for name, stream in self._options.streams.items():
            try:
                await js.stream_info(name)
            except js_errors.NotFoundError:
                await js.add_stream(
                    StreamConfig(
                        name=name,
                        subjects=list(stream.subjects),
                        storage=StorageType.FILE,
                        duplicate_window=stream.duplicate_window_s,
                        max_age=stream.max_age_s,
                    )
                )

    def version(self) -> str:
        """``nats-server 2.9.10`` (the version the server announced)."""
        if self._client is None:
            return "nats-server"
        version = self._client.connected_server_version
        return f"nats-server {version.major}.{version.minor}.{version.patch}"

    @property
    def client(self) -> Client:
        """The open connection (after :meth:`jetstream`)."""
        if self._client is None:
            raise nats_errors.ConnectionClosedError
        return self._client

    async def reset(self) -> None:
        """Drop the connection (after a failure): the next use opens a new one."""
        async with self._lock or asyncio.Lock():
            await self._drop()

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            # It is being dropped because it failed: closing may fail as well.
            with contextlib.suppress(nats_errors.Error, OSError, asyncio.TimeoutError):
                await client.close()
