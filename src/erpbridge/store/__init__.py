"""The hub store: tables, migrations and the repositories the engine writes through."""

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
