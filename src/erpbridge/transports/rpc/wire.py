"""The RPC transport's wire: typed values, XML-RPC bodies with a guarded parser, server faults.

Tryton tags the values JSON has no type for (``{"__class__": "Decimal", "decimal": "19.90"}``,
``datetime``, ``date``, ``time``, ``timedelta``, ``bytes``); its XML-RPC uses the same tags for
``Decimal`` (on the way in), ``date``, ``time`` and ``timedelta``, answers decimals as
``<bigdecimal>`` and datetimes as ``dateTime.iso8601`` (whole seconds only). Odoo has no typed
values: dates and datetimes travel as text (``2024-05-01 06:00:00``, UTC), decimals as floats,
empty values as ``false``.

XML-RPC bodies are built and read with :mod:`xmlrpc.client`'s marshaller, but parsed by
:mod:`~.xmlguard` (defusedxml's parser: any DOCTYPE is refused, so no entity can expand, and
the depth is bounded).
"""

from __future__ import annotations

import base64
import xmlrpc.client
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from xml.parsers import expat

from erpbridge.errors import FatalError, RetriableError
from erpbridge.transports import xmlguard
from erpbridge.transports.base import HealthCategory

__all__ = [
    "RpcError",
    "RpcFault",
    "RpcRetriable",
    "odoo_encode",
    "tryton_decode",
    "tryton_encode",
    "tryton_hook",
    "xml_dumps",
    "xml_loads",
]

ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"


class RpcFault(Exception):
    """The server answered a call with an error: Tryton's ``error`` list, Odoo's ``error``
    object, or an XML-RPC ``<fault>``. ``kind`` is the server's exception name."""

    def __init__(self, kind: str, message: str, code: int | None = None) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message
        self.code = code


class RpcError(FatalError):
    """A call the server refused for good (login, rights, a record it will not take)."""

    def __init__(self, message: str, category: HealthCategory = "error") -> None:
        super().__init__(message)
        self.category: HealthCategory = category


class RpcRetriable(RetriableError):
    """A call that may succeed later (Tryton's ConcurrencyException, a serialization clash)."""

    def __init__(self, message: str, category: HealthCategory = "error") -> None:
        super().__init__(message)
        self.category: HealthCategory = category


# -- Tryton typed values -------------------------------------------------------------------------


def tryton_encode(value: Any, *, xml: bool = False) -> Any:
    """``value`` with Decimal, dates, times, durations and bytes tagged the way trytond reads
    them. For XML-RPC, datetimes and bytes stay native (``dateTime.iso8601``, ``base64``)."""
    if isinstance(value, Mapping):
        return {str(k): tryton_encode(v, xml=xml) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tryton_encode(v, xml=xml) for v in value]
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # Tryton keeps naive UTC
            value = value.astimezone(UTC).replace(tzinfo=None)
        if xml:
            return value
        return {"__class__": "datetime", **_parts(value, _DATETIME_PARTS)}
    if isinstance(value, date):
        return {"__class__": "date", **_parts(value, ("year", "month", "day"))}
    if isinstance(value, time):
        return {"__class__": "time", **_parts(value, ("hour", "minute", "second", "microsecond"))}
    if isinstance(value, timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes | bytearray):
        if xml:
            return bytes(value)
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    return _scalar(value)


_DATETIME_PARTS = ("year", "month", "day", "hour", "minute", "second", "microsecond")


def _parts(value: Any, names: tuple[str, ...]) -> dict[str, int]:
    return {name: getattr(value, name) for name in names}


def tryton_hook(tagged: dict[str, Any]) -> Any:
    """``json.loads`` object hook: a tagged Tryton value as the Python value it stands for."""
    kind = tagged.get("__class__")
    if kind is None or not isinstance(kind, str):
        return tagged
    try:
        if kind == "Decimal":
            return Decimal(tagged["decimal"])
        if kind == "datetime":
            year, month, day, hour, minute, second, micro = (
                int(tagged[name]) for name in _DATETIME_PARTS
            )
            return datetime(year, month, day, hour, minute, second, micro)
        if kind == "date":
            return date(int(tagged["year"]), int(tagged["month"]), int(tagged["day"]))
        if kind == "time":
            hour, minute, second, micro = (
                int(tagged[n]) for n in ("hour", "minute", "second", "microsecond")
            )
            return time(hour, minute, second, micro)
        if kind == "timedelta":
            return timedelta(seconds=float(tagged["seconds"]))
        if kind == "bytes":
            return base64.b64decode(tagged["base64"])
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"malformed {kind} value {tagged!r}") from exc
    return tagged


def tryton_decode(value: Any) -> Any:
    """``value`` (from XML-RPC) with every tagged struct decoded, recursively."""
    if isinstance(value, dict):
        return tryton_hook({k: tryton_decode(v) for k, v in value.items()})
    if isinstance(value, list):
        return [tryton_decode(v) for v in value]
    return value


# -- Odoo values ---------------------------------------------------------------------------------


def odoo_encode(value: Any) -> Any:
    """``value`` as Odoo's external API takes it: dates as text (UTC), decimals as floats,
    bytes as base64 text and ``None`` as ``False`` (Odoo's empty value)."""
    if isinstance(value, Mapping):
        return {str(k): odoo_encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [odoo_encode(v) for v in value]
    if value is None:
        return False
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime(ODOO_DATETIME)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return _scalar(value)


def _scalar(value: Any) -> Any:
    """A value the wire carries as it is; anything else cannot be sent."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"a value of type {type(value).__name__} cannot be sent: {value!r}")


# -- XML-RPC bodies ------------------------------------------------------------------------------


def xml_dumps(method: str, params: list[Any]) -> bytes:
    """An XML-RPC ``methodCall`` body (UTF-8); ``None`` goes out as ``<nil/>``."""
    return xmlrpc.client.dumps(tuple(params), method, allow_none=True, encoding="utf-8").encode()


def xml_loads(body: bytes) -> Any:
    """The value of an XML-RPC ``methodResponse``.

    Raises :class:`RpcFault` for a ``<fault>`` and ``ValueError`` for anything that is not a
    well-formed response, including any document with a DOCTYPE (no entity is ever expanded) or
    nested too deep (:class:`~.xmlguard.XmlRefused`, a ``ValueError``).
    """
    try:
        values = xmlguard.xmlrpc_values(body)
    except xmlrpc.client.Fault as fault:
        code = fault.faultCode if isinstance(fault.faultCode, int) else None
        raise RpcFault(str(fault.faultCode), str(fault.faultString), code) from None
    except xmlguard.XmlRefused as exc:
        raise ValueError(f"XML-RPC response refused: {exc}") from None
    except (expat.ExpatError, xmlrpc.client.ResponseError, IndexError, TypeError) as exc:
        raise ValueError(f"not an XML-RPC response ({exc})") from exc
    if len(values) != 1:
        raise ValueError(f"an XML-RPC response holds one value, this one {len(values)}")
    return values[0]
