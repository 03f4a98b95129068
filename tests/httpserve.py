"""Test HTTP servers in a thread of the test process, each on a free port of 127.0.0.1.

The one helper for what tests used to hand-roll each time: a fake ERP, an identity provider's
JWKS, a webhook receiver, a channel's REST API. :func:`serve_handler` serves a
``BaseHTTPRequestHandler`` class (``http.server``), :func:`serve_app` an ASGI app (uvicorn, TLS
options included). Both return a :class:`Served` that is a context manager, or is closed by hand.
:func:`silent_port` is the hung server: it accepts connections and never answers.

The port is the kernel's choice (bind to 0), so two test runs on one machine never collide.
A hub served as a user starts it (a subprocess) is ``hubprocess.serve_hub``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["QuietHandler", "Served", "serve_app", "serve_handler", "silent_port"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps its request log out of the test output."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Served:
    """A running test server: ``url`` is ``http(s)://127.0.0.1:<port>``, no trailing slash."""

    def __init__(self, scheme: str, port: int, stop: Callable[[], None]) -> None:
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self._stop = stop

    def close(self) -> None:
        """Stop serving and free the port."""
        self._stop()

    def __enter__(self) -> Served:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def serve_handler(handler: type[BaseHTTPRequestHandler], poll_interval: float = 0.5) -> Served:
    """Serve ``handler`` (``http.server``), one thread per request, until closed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(10)

    return Served("http", server.server_address[1], stop)


def serve_app(app: Any, **options: Any) -> Served:
    """Serve the ASGI ``app`` with uvicorn until closed; ``options`` go to ``uvicorn.Config``
    (``ssl_keyfile``, ``ssl_certfile``, …: with a certificate the URL is ``https``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(app, **{"log_level": "warning", "lifespan": "off", **options})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            sock.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return Served("https" if "ssl_certfile" in options else "http", port, stop)


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections (into the backlog) and never says a word, like a hung
    server; open for the length of the block."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port: int = server.getsockname()[1]
        yield port
