"""OData URL pieces: literals, key predicates, filters, ``$expand`` and the query string.

Literals differ between the versions; this module is the one place that knows how:

============================  ==============================  ==============================
EDM type                      V4                              V2
============================  ==============================  ==============================
``Edm.String``                ``'O''Neil'``                   ``'O''Neil'``
``Edm.Guid``                  ``0b5c…``                       ``guid'0b5c…'``
``Edm.DateTimeOffset``        ``2024-05-01T08:00:00Z``        ``datetimeoffset'…Z'``
``Edm.DateTime`` (V2)                                         ``datetime'2024-05-01T08:00:00'``
``Edm.Date`` (V4)             ``2024-05-01``
``Edm.TimeOfDay``/``Time``    ``08:30:00``                    ``time'PT08H30M00S'``
``Edm.Decimal``               ``12.50``                       ``12.50M``
``Edm.Int64``                 ``12``                          ``12L``
``Edm.Double``                ``1.5``                         ``1.5d``
``Edm.Boolean``               ``true``                        ``true``
============================  ==============================  ==============================

Values are percent-encoded here (spaces as ``%20``, never ``+``, which CAP refuses).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from erpbridge.transports.odata.edm import (
    EntityType,
    Property,
    Version,
    as_date,
    as_datetime,
    iso_z,
    parse_time,
    to_wire,
)

__all__ = [
    "after_keys",
    "expand_clause",
    "key_predicate",
    "literal",
    "query_string",
    "string_literal",
]

# Characters left alone in a query value: OData's own syntax. '&', '=', '+', '#', '%' and
# spaces are encoded, so a literal can hold them.
_QUERY_SAFE = "$'(),:/*@.-_~"
# In a key predicate in the path also '/' is encoded: a slash would split the path.
_PATH_SAFE = "'(),=:@.-_~"


def string_literal(text: str) -> str:
    """``text`` as an OData string literal: quoted, with inner quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def _type_of(value: Any, version: Version) -> str:
    """The EDM type a Python value stands for when ``$metadata`` says nothing."""
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32" if -(2**31) <= value < 2**31 else "Edm.Int64"
    if isinstance(value, float | Decimal):
        return "Edm.Decimal"
    if isinstance(value, datetime):
        return "Edm.DateTimeOffset"
    if isinstance(value, date):
        return "Edm.DateTime" if version == "2" else "Edm.Date"
    if isinstance(value, time):
        return "Edm.Time" if version == "2" else "Edm.TimeOfDay"
    if isinstance(value, uuid.UUID):
        return "Edm.Guid"
    return "Edm.String"


def literal(value: Any, edm_type: str | None, version: Version) -> str:
    """``value`` as a literal of ``edm_type`` (inferred from the value when ``None``).

    Raises ``ValueError`` when the value cannot be one (``abc`` as ``Edm.Decimal``).
    """
    if value is None:
        return "null"
    kind = edm_type or _type_of(value, version)
    if kind == "Edm.Boolean":
        return "true" if to_wire(value, Property(kind), version) else "false"
    if kind == "Edm.Guid":
        text = str(uuid.UUID(str(value)))
        return f"guid'{text}'" if version == "2" else text
    if kind == "Edm.DateTimeOffset":
        text = iso_z(as_datetime(value))
        return f"datetimeoffset'{text}'" if version == "2" else text
    if kind == "Edm.DateTime":  # V2's local date-time: the UTC wall clock without a zone
        return f"datetime'{iso_z(as_datetime(value))[:-1]}'"
    if kind == "Edm.Date":
        return as_date(value).isoformat()
    if kind in ("Edm.Time", "Edm.TimeOfDay"):
        moment = value if isinstance(value, time) else parse_time(str(value))
        if version == "2":
            return f"time'PT{moment.hour:02d}H{moment.minute:02d}M{moment.second:02d}S'"
        return moment.isoformat()
    if kind in ("Edm.Decimal", "Edm.Int64", "Edm.Double", "Edm.Single"):
        text = str(to_wire(value, Property(kind), version))
        suffix = {"Edm.Decimal": "M", "Edm.Int64": "L", "Edm.Double": "d", "Edm.Single": "f"}
        return text + suffix[kind] if version == "2" else text
    if kind in ("Edm.Int16", "Edm.Int32", "Edm.Byte", "Edm.SByte"):
        return str(to_wire(value, Property(kind), version))
    return string_literal(str(value))


def key_predicate(values: Mapping[str, Any], entity: EntityType, version: Version) -> str:
    """The key predicate of an entity, URL-encoded: ``('1000001')`` for a single key,
    ``(SalesOrder='1',SalesOrderItem='10')`` for a compound one.

    Raises ``ValueError`` naming a key property that has no value.
    """
    parts: list[tuple[str, str]] = []
    for name in entity.keys:
        value = values.get(name)
        if value is None or value == "":
            raise ValueError(f"key property {name} has no value")
        prop = entity.properties.get(name)
        text = literal(value, prop.type if prop else None, version)
        parts.append((name, quote(text, safe=_PATH_SAFE)))
    if len(parts) == 1:
        return f"({parts[0][1]})"
    return "(" + ",".join(f"{name}={text}" for name, text in parts) + ")"


def after_keys(
    names: Sequence[str], values: Sequence[Any], entity: EntityType, version: Version
) -> str:
    """A filter for the entities after ``values`` in the order of ``names`` (keyset paging):
    ``(a gt 1) or (a eq 1 and b gt 'x')``."""
    terms = []
    for depth, name in enumerate(names):
        equal = [
            f"{names[i]} eq {_typed_literal(entity, names[i], values[i], version)}"
            for i in range(depth)
        ]
        greater = f"{name} gt {_typed_literal(entity, name, values[depth], version)}"
        terms.append("(" + " and ".join([*equal, greater]) + ")")
    return " or ".join(terms)


def _typed_literal(entity: EntityType, name: str, value: Any, version: Version) -> str:
    prop = entity.properties.get(name)
    return literal(value, prop.type if prop else None, version)


def expand_clause(paths: Sequence[str], version: Version) -> str:
    """``$expand`` for navigation paths written ``a/b``: V2 takes them as they are, V4 nests
    them (``a($expand=b)``)."""
    if version == "2":
        return ",".join(paths)
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for step in path.split("/"):
            node = node.setdefault(step, {})

    def render(node: dict[str, Any]) -> str:
        return ",".join(
            f"{name}($expand={render(sub)})" if sub else name for name, sub in node.items()
        )

    return render(tree)


def query_string(params: Mapping[str, str]) -> str:
    """``params`` as a query string with OData's characters kept and spaces as ``%20``."""
    return "&".join(
        f"{quote(name, safe='$')}={quote(value, safe=_QUERY_SAFE)}"
        for name, value in params.items()
    )
