"""System types: the kinds of external system a channel can be, and their default transport.

Third-party packages add system types through the ``erpbridge.systems`` entry-point group (a
:class:`SystemType` object), the same door the built-ins would use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

__all__ = ["SystemType", "system_types"]


@dataclass(frozen=True)
class SystemType:
    """A kind of external system: the transport it speaks by default and what it is."""

    name: str
    transport: str
    description: str
    #: Channel options the system type implies (``dialect: odoo``); a channel's own win.
    defaults: Mapping[str, Any] = field(default_factory=dict)


_BUILTIN = (
    SystemType("folder", "folder", "Files (CSV, JSON, XML) dropped in a local folder."),
    SystemType("sql", "sql", "A database read through SQLAlchemy, read-only (MES/ERP tables)."),
    SystemType("rest", "rest", "A JSON REST API (web shop, CRM, platform)."),
    SystemType(
        "platform",
        "inbound",
        "A platform that pushes events and signed webhooks to the hub's API.",
    ),
    SystemType("soap", "soap", "A SOAP web service described by a WSDL."),
    SystemType("odata", "odata", "An OData V4 or V2 service (SAP Gateway, SAP CAP, Dynamics)."),
    SystemType("sftp", "sftp", "Files (CSV, JSON, XML) in folders on an SFTP server."),
    SystemType(
        "tryton",
        "rpc",
        "Tryton ERP over its JSON-RPC API.",
        {"dialect": "tryton", "protocol": "jsonrpc"},
    ),
    SystemType(
        "odoo",
        "rpc",
        "Odoo over its external API (JSON-RPC or XML-RPC).",
        {"dialect": "odoo", "protocol": "jsonrpc"},
    ),
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
