"""A record's history as the deletes tests read it: each version's audit action, then
``(deleted)`` when the record stands deleted now."""

from __future__ import annotations

from sqlalchemy import Engine

from erpbridge.store.read import EVERYTHING, record_view

__all__ = ["actions"]


def actions(engine: Engine, entity: str, key: str) -> list[str]:
    """``["created", "deleted", "(deleted)"]`` and the like, for record ``entity``/``key``."""
    with engine.connect() as conn:
        view = record_view(conn, EVERYTHING, entity, key)
    assert view is not None, f"no {entity} record {key!r}"
    return [v.row.action for v in view.versions] + (["(deleted)"] if view.deleted else [])
