"""System types: the kinds of external system a channel can be, and their default transport.

Third-party packages add system types through the ``erpbridge.systems`` entry-point group (a
:class:`SystemType` object), the same door the built-ins would use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from erpbridge.errors import ConfigError
from erpbridge.yamlfile import read_yaml

__all__ = ["SystemType", "builtin_presets", "system_types"]


@dataclass(frozen=True)
class SystemType:
    """A kind of external system: the transport it speaks by default and what it is."""

    name: str
    transport: str
    description: str
    #: Channel options the system type implies (``dialect: odoo``); a channel's own win.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: A YAML file (or a folder of them) of flow presets — ``presets: {name: flow settings}`` —
    #: that a flow names with ``preset:``.
    preset_file: Traversable | None = None

    def presets(self) -> dict[str, dict[str, Any]]:
        """The system type's flow presets by name (empty when it has none)."""
        if self.preset_file is None or not (
            self.preset_file.is_dir() or self.preset_file.is_file()
        ):
            return {}
        files_ = (
            sorted((f for f in self.preset_file.iterdir() if f.name.endswith(".yaml")), key=str)
            if self.preset_file.is_dir()
            else [self.preset_file]
        )
        found: dict[str, dict[str, Any]] = {}
        for file in files_:
            found |= _load_presets(file.read_text(encoding="utf-8"), file.name)
        return found


@cache
def _load_presets(text: str, name: str) -> dict[str, dict[str, Any]]:
    document = read_yaml(text, name)  # YAML 1.2, like the configuration file
    if document.problems:
        raise ConfigError(document.problems)
    data = document.data or {}
    presets = data.get("presets", {}) if isinstance(data, dict) else {}
    return {str(k): dict(v) for k, v in presets.items() if isinstance(v, dict)}


def builtin_presets(system: str) -> Traversable:
    """The folder of preset files shipped with built-in system type ``system``."""
    return files("erpbridge.systems").joinpath(system)


_BUILTIN = (
    SystemType("folder", "folder", "Files (CSV, JSON, XML) dropped in a local folder."),
    SystemType("sql", "sql", "A database read through SQLAlchemy, read-only (MES/ERP tables)."),
    SystemType("rest", "rest", "A JSON REST API (web shop, CRM, platform)."),
    SystemType(
        "platform",
        "platform",
        "A platform that pushes events and signed webhooks to the hub's API.",
    ),
    SystemType("soap", "soap", "A SOAP web service described by a WSDL."),
    SystemType("odata", "odata", "An OData V4 or V2 service (SAP Gateway, SAP CAP, Dynamics)."),
    SystemType("sftp", "sftp", "Files (CSV, JSON, XML) in folders on an SFTP server."),
    SystemType("rabbitmq", "amqp", "A RabbitMQ (AMQP 0-9-1) broker: queues IN, exchanges OUT."),
    SystemType("nats", "nats", "A NATS server with JetStream: streams IN and OUT."),
    SystemType(
        "tryton",
        "rpc",
        "Tryton ERP over its JSON-RPC API.",
        {"dialect": "tryton", "protocol": "jsonrpc"},
        builtin_presets("tryton"),
    ),
    SystemType(
        "sap",
        "odata",
        "SAP S/4HANA over its OData APIs (API_BUSINESS_PARTNER, API_PRODUCT_SRV, …).",
        {"version": "2"},
        builtin_presets("sap"),
    ),
    SystemType(
        "archive",
        "archive",
        "The document archive: every document kept with its metadata and retention period.",
    ),
    SystemType(
        "odoo",
        "rpc",
        "Odoo over its external API (JSON-RPC or XML-RPC).",
        {"dialect": "odoo", "protocol": "jsonrpc"},
        builtin_presets("odoo"),
    ),
    SystemType("jsonapi", "jsonapi", "A JSON:API service (jsonapi.org): documents, include."),
    SystemType(
        "oro",
        "jsonapi",
        "OroCommerce's back-office API (JSON:API, OAuth 2.0 client credentials).",
        preset_file=builtin_presets("oro"),
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
