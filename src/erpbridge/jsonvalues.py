"""Values JSON lacks, written the one way the hub writes them: the ``default`` of every
``orjson.dumps`` that meets source or mapped values (stored payloads, rejected records, REST
bodies, OData problems).

Decimals go out as text, so no digit is rounded; sets as lists; bytes as hex. Anything else is a
``TypeError`` naming its type, for the caller to turn into its own error. The lowest layer: it
imports nothing of erpbridge, so the store, the engine and every transport may use it.

Converters with a protocol's own rules stay with their protocol: RPC answers
(``transports.rpc.call.plain``: bytes as base64, durations as seconds), zeep objects
(``transports.soap.values.plain``) and file writers (``transports.files.writers``: a value a format
cannot carry is refused naming the record and field).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

__all__ = ["as_json", "json_default"]


def json_default(value: Any) -> Any:
    """``orjson`` ``default``: a Decimal as text, a set as a list, bytes as hex."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")


def as_json(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, text, numbers, booleans, None)."""
    return orjson.loads(orjson.dumps(value, default=json_default))
