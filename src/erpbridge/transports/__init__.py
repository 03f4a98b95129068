"""Transports: one module per way of moving bytes, all behind :class:`Transport`.

Built-in and third-party transports register through the same door, the
``erpbridge.transports`` entry-point group, so a package can add one without forking.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    SourceProblem,
    SourceRecord,
    StreamOptions,
    Transport,
    TransportClass,
)

__all__ = [
    "Batch",
    "CursorValue",
    "Health",
    "SourceProblem",
    "SourceRecord",
    "StreamOptions",
    "Transport",
    "TransportClass",
    "available_transports",
    "load_transport",
]

ENTRY_POINT_GROUP = "erpbridge.transports"


@cache
def available_transports() -> dict[str, str]:
    """Transport name → ``module:Class``, as registered through entry points."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def load_transport(name: str) -> TransportClass:
    """Import and return the transport class registered as ``name``.

    Raises ``KeyError`` for a name nobody registered; the config loader turns that into a
    config problem that lists the known names.
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        cls: TransportClass = ep.load()
        return cls
    raise KeyError(name)
