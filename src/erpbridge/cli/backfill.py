"""``erpbridge backfill`` and ``erpbridge replay``: fill an OUT flow with what the hub holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, actor, console, fail, load, store

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from erpbridge.engine.backfill import Filler, FillResult

__all__ = ["backfill", "replay"]

FlowName = Annotated[str, typer.Argument(help="The OUT flow to fill.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Count what would be queued; queue nothing.")
]
MaxPending = Annotated[
    int,
    typer.Option(
        "--max-pending",
        help="Wait while this many queued deliveries are still to go out (0: no limit).",
    ),
]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="Then wait until workers have delivered what was queued."),
]


def _filler(config_path: ConfigOption, max_pending: int) -> Filler:
    from erpbridge.engine.backfill import Filler

    if max_pending < 0:
        raise fail(f"--max-pending {max_pending}: give 0 (no limit) or more", 2)
    config = load(config_path)
    return Filler(config, store(config), max_pending=max_pending)


def _report(result: FillResult) -> None:
    what = "record(s)" if result.mode == "backfill" else "version(s)"
    head = f"{result.mode} of flow {result.flow}: run {result.run_id} {result.status}"
    if result.resumed_from is not None:
        head += f" (resumed run {result.resumed_from})"
    verb = "would be queued" if result.dry_run else "queued"
    console.print(
        f"{head}: {result.scanned} {what} looked at, {result.queued} {verb}, "
        f"{result.skipped} skipped (already queued or delivered at that version, or not for "
        f"this flow) in {result.duration_s:.1f} s",
        highlight=False,
    )
    if result.error:
        raise fail(f"run {result.run_id}: {result.error}")


def _printer() -> Callable[[FillResult], None]:
    last = [0.0]

    def show(result: FillResult) -> None:
        if time.monotonic() - last[0] >= 2.0:
            last[0] = time.monotonic()
            console.print(
                f"run {result.run_id}: {result.scanned}/{result.total} looked at, "
                f"{result.queued} queued",
                highlight=False,
            )

    return show


def _wait(engine: Engine, run_id: int) -> None:
    from erpbridge.store.backfill import progress
    from erpbridge.store.states import OPEN_DELIVERY_STATES

    while True:
        with engine.connect() as conn:
            counts = progress(conn, run_id)
        open_ = sum(counts.get(s, 0) for s in OPEN_DELIVERY_STATES)
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing queued"
        console.print(f"run {run_id}: {shown}", highlight=False)
        if open_ == 0:
            return
        time.sleep(2.0)


def _run(filler: Filler, start: Callable[[], FillResult], wait: bool) -> None:
    from erpbridge.engine.backfill import BackfillRefused
    from erpbridge.errors import FlowBusy
    from erpbridge.store.adminaudit import record_action

    try:
        result = start()
    except BackfillRefused as exc:
        raise fail(str(exc), 2) from None
    except FlowBusy as exc:
        raise fail(str(exc), 75) from None
    if not result.dry_run:
        detail = {"run_id": result.run_id, "queued": result.queued}
        record_action(
            filler.engine, actor(), None, f"flow.{result.mode}", result.flow, detail=detail
        )
    _report(result)
    if wait and not result.dry_run:
        _wait(filler.engine, result.run_id)


def backfill(
    flow: FlowName,
    config_path: ConfigOption = DEFAULT_CONFIG,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="Only records whose FIELD (dotted path) equals VALUE; repeat to narrow.",
            metavar="FIELD=VALUE",
        ),
    ] = None,
    changed_since: Annotated[
        str | None,
        typer.Option(
            "--changed-since", help="Only records changed at or after this time (ISO 8601)."
        ),
    ] = None,
    dry_run: DryRun = False,
    wait: Wait = False,
    max_pending: MaxPending = 20_000,
) -> None:
    """Queue every record the hub holds for an OUT flow (its current version, once), below
    live traffic; an interrupted backfill with the same options resumes where it stopped."""
    from erpbridge.engine.backfill import (
        BackfillRefused,
        BackfillRequest,
        parse_where,
    )
    from erpbridge.moments import BadMoment, parse_moment

    filler = _filler(config_path, max_pending)
    try:
        target = filler.target(flow)
        terms = parse_where(filler.config, target.entity, where or [])
        since = None if changed_since is None else parse_moment("--changed-since", changed_since)
    except (BackfillRefused, BadMoment) as exc:
        raise fail(str(exc), 2) from None
    request = BackfillRequest(flow, terms, since, dry_run)
    _run(filler, lambda: filler.backfill(request, _printer()), wait)


def replay(
    flow: FlowName,
    start: Annotated[str, typer.Option("--from", help="From this time (ISO 8601), included.")],
    end: Annotated[
        str | None, typer.Option("--to", help="Up to this time (ISO 8601), included; default: now.")
    ] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
    dry_run: DryRun = False,
    wait: Wait = False,
    max_pending: MaxPending = 20_000,
) -> None:
    """Queue every version written in a time range for an OUT flow, in order, then each touched
    record's current version if newer; for a target that lost data, or a new archive."""
    from erpbridge.engine.backfill import BackfillRefused, ReplayRequest
    from erpbridge.moments import BadMoment, parse_moment
    from erpbridge.store.runs import now

    filler = _filler(config_path, max_pending)
    try:
        filler.target(flow)
        request = ReplayRequest(
            flow,
            parse_moment("--from", start),
            now() if end is None else parse_moment("--to", end),
            dry_run,
        )
    except (BackfillRefused, BadMoment) as exc:
        raise fail(str(exc), 2) from None
    _run(filler, lambda: filler.replay(request, _printer()), wait)
