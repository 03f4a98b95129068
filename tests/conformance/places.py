"""Places the conformance harnesses point connectors at when a test needs a failure."""

from __future__ import annotations

import socket

__all__ = ["closed_port"]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
