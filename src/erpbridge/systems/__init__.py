"""System types: the kinds of external system a channel can be, and their default transport.

Third-party packages add system types through the ``erpbridge.systems`` entry-point group (a
:class:`SystemType` object), the same door the built-ins would use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

__all__ = ["SystemType", "system_types"]


@dataclass(frozen=True)
class SystemType:
    """A kind of external system: the transport it speaks by default and what it is."""

    name: str
    transport: str
    description: str


_BUILTIN = (
    SystemType("folder", "folder", "Files (CSV, JSON, XML) dropped in a local folder."),
    SystemType("sql", "sql", "A database read through SQLAlchemy, read-only (MES/ERP tables)."),
)


@cache
def system_types() -> dict[str, SystemType]:
    """Every known system type by name: built-ins, then entry points."""
    known = {s.name: s for s in _BUILTIN}
    for ep in entry_points(group="erpbridge.systems"):
        system = ep.load()
        if isinstance(system, SystemType):
            known[system.name] = system
    return known
