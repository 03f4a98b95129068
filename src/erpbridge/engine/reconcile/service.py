"""One reconciliation from start to stored result: compare, repair if asked, record.

The CLI, the scheduler of ``erpbridge run`` and the API all go through :func:`reconcile_flow`,
so every reconciliation (a failed one too) leaves its row in ``reconciliations``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from erpbridge.config.loader import LoadedConfig
from erpbridge.config.reconciliation import ReconcilePlan
from erpbridge.engine.reconcile.repair import repair as apply_repair
from erpbridge.engine.reconcile.run import (
    DEFAULT_LIMIT,
    ReconcileFailed,
    Reconciler,
    Repair,
    Report,
)
from erpbridge.store.reconciliations import record_reconciliation

__all__ = ["Outcome", "reconcile_flow"]

log = logging.getLogger(__name__)

#: A stored reconciliation: its report and its row id.
Outcome = tuple[Report, int]


def reconcile_flow(
    config: LoadedConfig,
    engine: Engine,
    plan: ReconcilePlan,
    *,
    trigger: str,
    limit: int = DEFAULT_LIMIT,
    repair: Repair | None = None,
    on_queued: Callable[[], None] | None = None,
    stopping: threading.Event | None = None,
) -> Outcome:
    """Reconcile ``plan``'s flow, repair its differences when ``repair`` is given (the caller
    has checked that it fits, :func:`~erpbridge.engine.reconcile.repair.check_repair`), and
    store the result. A failure is a report with status ``failed`` and the error, stored too."""
    try:
        comparison = Reconciler(config, engine, stopping).reconcile(plan, limit=limit)
    except ReconcileFailed as exc:
        report = Report(
            plan.flow, plan.channel, plan.entity, plan.fields, datetime.now(UTC),
            status="failed", error=str(exc),
        )  # fmt: skip
    else:
        report = comparison.report
        try:
            if repair is not None and report.tally.differences:
                apply_repair(config, engine, comparison, repair, on_queued)
        except ReconcileFailed as exc:
            report.status, report.error = "failed", str(exc)
        finally:
            comparison.close()
    flow_channel = config.flow(plan.flow).channel
    row_id = record_reconciliation(engine, report.as_json(), channel=flow_channel, trigger=trigger)
    log.info(
        "reconciliation %d of flow %s (%s): %s, %d difference(s)",
        row_id, plan.flow, trigger, report.status, report.tally.differences,
    )  # fmt: skip
    return report, row_id
