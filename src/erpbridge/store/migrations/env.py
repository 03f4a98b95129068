"""Alembic environment: runs on the connection erpbridge hands over (see store.database)."""

from __future__ import annotations

from alembic import context

from erpbridge.store.database import include_name
from erpbridge.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through erpbridge.store.database.migrate
    raise RuntimeError("run migrations through erpbridge.store.database.migrate()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
