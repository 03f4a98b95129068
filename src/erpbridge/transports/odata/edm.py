"""What an OData service's ``$metadata`` says, and how its values look on the wire.

:func:`parse_metadata` reads the EDMX of OData V2 (``Version="1.0"``, associations) and V4
(``Version="4.0"``) into entity sets, entity types, keys, property types and navigation
properties. :func:`from_wire` turns a JSON value into Python (V2 ``/Date(ms)/`` and V4 ISO
texts into datetimes, ``Edm.Date`` into dates, ``Edm.Int64`` text into ints); :func:`to_wire`
turns a mapped value into what the version expects (V2 ``/Date(ms)/``, decimals as text).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from erpbridge.transports import xmlguard

__all__ = [
    "EntityType",
    "Metadata",
    "Navigation",
    "Property",
    "Version",
    "as_date",
    "as_datetime",
    "from_wire",
    "iso_z",
    "parse_datetime",
    "parse_metadata",
    "parse_time",
    "same_value",
    "to_wire",
]

Version = Literal["2", "4"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_V2_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{1,4}))?\)/$")
_FRACTION = re.compile(r"(\.\d{6})\d+")  # Python parses at most 6 fractional digits
_DURATION = re.compile(r"^-?P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)$")
_SMALL_INTS = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Byte", "Edm.SByte"})
_DATETIMES = frozenset({"Edm.DateTime", "Edm.DateTimeOffset"})


@dataclass(frozen=True, slots=True)
class Property:
    """One structural property: its EDM type; ``date_only`` for V2 ``sap:display-format="Date"``."""

    type: str
    date_only: bool = False


@dataclass(frozen=True, slots=True)
class Navigation:
    """A navigation property: the qualified name of its target type, and whether it is a list."""

    type: str
    many: bool


@dataclass(frozen=True)
class EntityType:
    """An entity type: key property names in order, properties and navigation properties."""

    name: str
    keys: tuple[str, ...]
    properties: dict[str, Property]
    navigation: dict[str, Navigation] = field(default_factory=dict)


@dataclass(frozen=True)
class Metadata:
    """A service's entity sets (name → qualified type name) and entity types by qualified name."""

    version: Version
    sets: dict[str, str]
    types: dict[str, EntityType]

    def entity_type(self, entity_set: str) -> EntityType | None:
        """The type of ``entity_set``, or ``None`` when the service has no such set."""
        name = self.sets.get(entity_set)
        return None if name is None else self.types.get(name)

    def set_of(self, type_name: str) -> str | None:
        """The first entity set whose type is ``type_name`` (where an item of a list lives)."""
        return next((name for name, kind in self.sets.items() if kind == type_name), None)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def parse_metadata(content: bytes) -> Metadata:
    """Parse an EDMX document (OData V2 or V4); ``ValueError`` when it is not one, or when
    :mod:`~.xmlguard` refuses it (DOCTYPE or entities in any encoding, nesting too deep)."""
    try:
        root = xmlguard.fromstring(content)
    except xmlguard.XmlRefused as exc:
        raise ValueError(f"$metadata refused: {exc}") from None
    except ET.ParseError as exc:
        raise ValueError(f"$metadata is not XML: {exc}") from None
    if _local(root.tag) != "Edmx":
        raise ValueError(f"$metadata is not an EDMX document (root element {_local(root.tag)})")
    version: Version = "2" if root.get("Version", "").startswith("1.") else "4"
    schemas = [e for e in root.iter() if _local(e.tag) == "Schema"]
    alias = {s.get("Alias", ""): s.get("Namespace", "") for s in schemas if s.get("Alias")}

    def qualified(name: str) -> str:
        head, _, tail = name.rpartition(".")
        return f"{alias.get(head, head)}.{tail}" if head else name

    ends: dict[tuple[str, str], tuple[str, bool]] = {}  # V2: (association, role) → (type, many)
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        for association in _children(schema, "Association"):
            for end in _children(association, "End"):
                key = (f"{namespace}.{association.get('Name')}", end.get("Role", ""))
                ends[key] = (qualified(end.get("Type", "")), end.get("Multiplicity") == "*")
    raw: dict[str, tuple[str | None, EntityType]] = {}
    sets: dict[str, str] = {}
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        for element in _children(schema, "EntityType"):
            name = f"{namespace}.{element.get('Name')}"
            base = element.get("BaseType")
            kind = _entity_type(name, element, ends, qualified)
            raw[name] = (qualified(base) if base else None, kind)
        for container in _children(schema, "EntityContainer"):
            for entity_set in _children(container, "EntitySet"):
                sets[entity_set.get("Name", "")] = qualified(entity_set.get("EntityType", ""))
    return Metadata(version, sets, {name: _inherit(name, raw) for name in raw})


def _entity_type(
    name: str,
    element: ET.Element,
    ends: dict[tuple[str, str], tuple[str, bool]],
    qualified: Callable[[str], str],
) -> EntityType:
    keys = tuple(
        ref.get("Name", "")
        for key in _children(element, "Key")
        for ref in _children(key, "PropertyRef")
    )
    properties = {}
    for prop in _children(element, "Property"):
        date_only = any(
            _local(attr) == "display-format" and value == "Date" for attr, value in prop.items()
        )
        properties[prop.get("Name", "")] = Property(prop.get("Type", "Edm.String"), date_only)
    navigation = {}
    for nav in _children(element, "NavigationProperty"):
        kind = nav.get("Type")
        if kind is not None:  # V4: Type="Collection(ns.T)" or "ns.T"
            many = kind.startswith("Collection(")
            target = qualified(kind.removeprefix("Collection(").removesuffix(")"))
        else:  # V2: Relationship + ToRole name an association end
            relationship = nav.get("Relationship", "")
            target, many = ends.get((relationship, nav.get("ToRole", "")), ("", False))
        navigation[nav.get("Name", "")] = Navigation(target, many)
    return EntityType(name, keys, properties, navigation)


def _inherit(name: str, raw: dict[str, tuple[str | None, EntityType]]) -> EntityType:
    base, kind = raw[name]
    seen = {name}
    while base is not None and base in raw and base not in seen:  # keys live on the root type
        seen.add(base)
        parent_base, parent = raw[base]
        kind = EntityType(
            name,
            kind.keys or parent.keys,
            {**parent.properties, **kind.properties},
            {**parent.navigation, **kind.navigation},
        )
        base = parent_base
    return kind


# -- values on the wire -----------------------------------------------------------------------


def parse_datetime(text: str) -> datetime:
    """A V2 ``/Date(ms)/`` or ``/Date(ms+0060)/`` or an ISO 8601 text, as an aware UTC datetime.

    The V2 milliseconds count from the epoch in UTC; an offset suffix only says which zone the
    value was entered in. An ISO text without a zone is taken as UTC.
    """
    match = _V2_DATE.match(text.strip())
    if match:
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00")))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> time:
    """A V2 ``Edm.Time`` duration (``PT08H30M00S``) or a V4 ``Edm.TimeOfDay`` (``08:30:00``)."""
    match = _DURATION.match(text.strip())
    if match:
        hours, minutes, seconds = match.groups()
        total = timedelta(
            hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0)
        )
        return (datetime.min + total).time()
    return time.fromisoformat(_FRACTION.sub(r"\1", text.strip()))


def as_datetime(value: Any) -> datetime:
    """A datetime, date or date/time text as an aware UTC datetime (a date: its midnight)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return parse_datetime(value)
    raise ValueError(f"expected a date-time, got {type(value).__name__} {value!r}")


def as_date(value: Any) -> date:
    """A date, datetime or date text as a date."""
    if isinstance(value, datetime):
        return as_datetime(value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        return date.fromisoformat(text) if len(text) == 10 else parse_datetime(text).date()
    raise ValueError(f"expected a date, got {type(value).__name__} {value!r}")


def from_wire(value: Any, prop: Property | None) -> Any:
    """A JSON value of ``prop`` as Python: date/time types parsed, ``Edm.Int64`` text as int.

    Raises ``ValueError`` when a value does not have its type's shape.
    """
    if value is None or prop is None or not isinstance(value, str):
        return value
    kind = prop.type
    if kind in _DATETIMES:
        moment = parse_datetime(value)
        return moment.date() if prop.date_only else moment
    if kind == "Edm.Date":
        return as_date(value)
    if kind in ("Edm.Time", "Edm.TimeOfDay"):
        return parse_time(value)
    if kind == "Edm.Int64":
        return int(value)
    return value


def _time_of(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, str):
        return parse_time(value)
    raise ValueError(f"expected a time, got {type(value).__name__} {value!r}")


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _milliseconds(moment: datetime) -> int:
    return (as_datetime(moment) - _EPOCH) // timedelta(milliseconds=1)


def iso_z(moment: datetime) -> str:
    """An aware or naive (UTC) datetime as ISO 8601 with ``Z``; milliseconds when exact."""
    moment = as_datetime(moment)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        fraction = f"{moment.microsecond:06d}"
        text += "." + (fraction[:3] if fraction.endswith("000") else fraction)
    return text + "Z"


def to_wire(value: Any, prop: Property | None, version: Version) -> Any:
    """A mapped value as ``prop``'s JSON form in ``version``; ``ValueError`` if it cannot be."""
    if value is None or prop is None:
        return value
    kind = prop.type
    if kind == "Edm.DateTime":  # V2 only
        return f"/Date({_milliseconds(as_datetime(value))})/"
    if kind == "Edm.DateTimeOffset":
        moment = as_datetime(value)
        return f"/Date({_milliseconds(moment)}+0000)/" if version == "2" else iso_z(moment)
    if kind == "Edm.Date":
        return as_date(value).isoformat()
    if kind == "Edm.Time":
        clock = _time_of(value)
        return f"PT{clock.hour:02d}H{clock.minute:02d}M{clock.second:02d}S"
    if kind == "Edm.TimeOfDay":
        return _time_of(value).isoformat()
    if kind in ("Edm.Decimal", "Edm.Int64"):
        # Text keeps every digit: V2 JSON requires it, V4 takes it with IEEE754Compatible=true.
        number = _decimal(value)
        if kind == "Edm.Int64" and number != number.to_integral_value():
            raise ValueError(f"not a whole number: {value!r}")
        return str(int(number)) if kind == "Edm.Int64" else str(number)
    if kind in _SMALL_INTS:
        number = _decimal(value)
        if number != number.to_integral_value():
            raise ValueError(f"not a whole number: {value!r}")
        return int(number)
    if kind in ("Edm.Double", "Edm.Single"):
        return float(_decimal(value))
    if kind == "Edm.Boolean":
        return _boolean(value)
    if (
        kind in ("Edm.String", "Edm.Guid")
        and isinstance(value, int | float | Decimal)
        and not isinstance(value, bool)
    ):
        return str(value)
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "x", "yes"):
        return True
    if text in ("false", "0", "", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def same_value(prop: Property | None, current: Any, wanted: Any) -> bool:
    """Whether two wire values of ``prop`` mean the same (``10.50`` and ``10.5`` do)."""
    if current == wanted:
        return True
    if current is None or wanted is None or prop is None:
        return False
    try:
        if prop.type in ("Edm.Decimal", "Edm.Int64", "Edm.Double", "Edm.Single"):
            return _decimal(current) == _decimal(wanted)
        return bool(from_wire(current, prop) == from_wire(wanted, prop))
    except ValueError:
        return False
