"""The hub store: tables, migrations and the repositories the engine writes through.

The names below are imported on first use (PEP 562): ``erpbridge.store.states`` and the like
stay cheap to import for the command line's help texts.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from erpbridge.store.database import create_hub_engine, migrate, open_store
    from erpbridge.store.tables import audit, bindings, cursors, metadata, records, rejected, runs

__all__ = [
    "audit",
    "bindings",
    "create_hub_engine",
    "cursors",
    "metadata",
    "migrate",
    "open_store",
    "records",
    "rejected",
    "runs",
]

_DATABASE = frozenset({"create_hub_engine", "migrate", "open_store"})


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "erpbridge.store.database" if name in _DATABASE else "erpbridge.store.tables"
        return getattr(import_module(module), name)
    raise AttributeError(f"module 'erpbridge.store' has no attribute {name!r}")
