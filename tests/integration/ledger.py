"""The hub side of an OUT flow in a test: run the real worker once, read the delivery ledger."""

from __future__ import annotations

from sqlalchemy import Engine, select

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import deliveries

__all__ = ["deliver", "ledger"]


def ledger(engine: Engine, flow: str) -> list[tuple[str, int, str, str | None]]:
    """(key, version, state, last error) of every delivery of ``flow``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                deliveries.c.key, deliveries.c.version, deliveries.c.state, deliveries.c.last_error
            )
            .where(deliveries.c.flow == flow)
            .order_by(deliveries.c.id)
        )
        return [(r.key, r.version, r.state, r.last_error) for r in rows]


def deliver(config: LoadedConfig, engine: Engine) -> None:
    """Deliver what is due, with the real worker, once."""
    worker = Worker(config, engine)
    try:
        worker.run_once()
    finally:
        worker.close()
