"""Repairs after a reconciliation, only when asked for (``--repair``).

- ``redeliver`` (OUT flows): the current version of every record the channel lacks or holds
  stale is queued again through the delivery ledger (the outbox the workers drain), below live
  traffic, as a run of mode ``reconcile``. Each delivery has its own idempotency key, so a
  version the flow delivered before is written again.
- ``reread`` (IN flows reconciled through their own source): the channel is read once more and
  every record the hub lacks or holds stale is stored through the flow, as an event would be
  (mapping, merge, audit, deliveries to the OUT flows); the flow's cursor stays where it is.

Both take the keys from the comparison's spill file, never from memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.dispatcher import ledger_dispatcher
from erpbridge.engine.heartbeat import Heartbeat
from erpbridge.engine.reconcile.compare import DifferenceKind
from erpbridge.engine.reconcile.run import Comparison, ReconcileFailed, ReconcileRefused, Repair
from erpbridge.engine.runner import FlowRunner
from erpbridge.errors import DataError, ErpbridgeError
from erpbridge.store.backfill import Target, redeliver_keys
from erpbridge.store.runs import BatchCounts, add_batch, finish_run, now, start_run

__all__ = ["check_repair", "repair"]

#: Re-read records handed to the flow per transaction.
_REREAD_BATCH = 500


def check_repair(config: LoadedConfig, flow_name: str, kind: Repair) -> None:
    """:class:`ReconcileRefused` when ``kind`` cannot repair flow ``flow_name``."""
    flow = config.flow(flow_name)
    plan = config.reconcile[flow_name]
    if kind == "redeliver" and flow.direction != "out":
        raise ReconcileRefused(
            f"--repair redeliver: flow {flow_name!r} is an IN flow; what its channel holds "
            "and the hub lacks is re-read with --repair reread"
        )
    if kind == "reread":
        if flow.direction != "in":
            raise ReconcileRefused(
                f"--repair reread: flow {flow_name!r} is an OUT flow; what its channel lacks "
                "is sent again with --repair redeliver"
            )
        if not plan.own_source:
            raise ReconcileRefused(
                f"--repair reread: flow {flow_name!r} is reconciled through another channel, "
                "source or mapping than its own; only what the flow itself reads can be "
                "re-read through it"
            )


def repair(
    config: LoadedConfig,
    engine: Engine,
    comparison: Comparison,
    kind: Repair,
    on_queued: Callable[[], None] | None = None,
) -> int:
    """Apply ``kind`` to the differences of ``comparison``; return how many records were queued
    again (``redeliver``) or stored created or updated (``reread``)."""
    check_repair(config, comparison.plan.flow, kind)
    report = comparison.report
    report.repair = kind
    if kind == "redeliver":
        report.repaired = _redeliver(config, engine, comparison)
    else:
        report.repaired = _reread(config, engine, comparison, on_queued)
    return report.repaired


def _redeliver(config: LoadedConfig, engine: Engine, comparison: Comparison) -> int:
    flow = config.flow(comparison.plan.flow)
    # echo: the target lacks the record, even if the record first came from that channel.
    target = Target(flow.name, flow.channel, flow.entity, flow.retry.max_attempts, True)
    lease = config.run_lease()
    run_id = start_run(
        engine, flow=flow.name, channel=flow.channel, entity=flow.entity, mode="reconcile",
        dry_run=False, cursor_before={"repair": "redeliver"}, lease=lease,
    )  # fmt: skip
    heartbeat = Heartbeat(engine, lease)
    heartbeat.add(run_id)
    dispatch = ledger_dispatcher(engine.dialect.name)
    queued, error = 0, None
    try:
        for keys in comparison.spill.repair_keys(("missing_in_channel", "differs")):
            with engine.begin() as conn:
                count = redeliver_keys(conn, target, run_id, keys, now(), dispatch)
                add_batch(conn, run_id, BatchCounts(read=len(keys), created=count), None)
            queued += count
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise ReconcileFailed(
            f"reconcile of flow {flow.name!r}: --repair redeliver stopped after {queued} "
            f"record(s) queued (run {run_id}): {exc}"
        ) from exc
    finally:
        heartbeat.discard(run_id)
        status = "failed" if error else "succeeded"
        finish_run(engine, run_id, status=status, error=error, warnings=[])
    return queued


def _reread(
    config: LoadedConfig,
    engine: Engine,
    comparison: Comparison,
    on_queued: Callable[[], None] | None,
) -> int:
    plan, spill = comparison.plan, comparison.spill
    key_of = config.entities[plan.entity].key_of
    runner = FlowRunner(config, engine, on_queued)
    wanted: tuple[DifferenceKind, ...] = ("missing_in_hub", "differs")
    stored = 0
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal stored
        if pending:
            done = runner.ingest(plan.flow, pending, origin="reconcile")
            stored += done.created + done.updated
            pending.clear()

    transport = config.open_transport(plan.channel)
    try:
        for batch in transport.read(plan.stream, None, plan.page_size, frozenset()):
            for record in batch.records:
                try:
                    key = key_of(plan.mapping(record.data))
                except DataError:
                    continue  # counted as not mappable by the comparison
                if spill.needs_repair(key, wanted):
                    pending.append(dict(record.data))
                if len(pending) >= _REREAD_BATCH:
                    flush()
        flush()
    except ErpbridgeError as exc:
        raise ReconcileFailed(
            f"reconcile of flow {plan.flow!r}: --repair reread stopped on channel "
            f"{plan.channel!r} after {stored} record(s) stored: {exc}; what was stored is "
            "complete per record, run the reconciliation again to see what is left"
        ) from exc
    finally:
        transport.close()
    return stored
