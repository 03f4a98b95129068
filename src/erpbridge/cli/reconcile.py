"""``erpbridge reconcile FLOW|ENTITY``: compare a channel's side with the hub, print the result.

Exit status: 0 both sides agree, 1 differences found (or a reconciliation failed: the channel
went down), 2 the request was refused (unknown flow, no ``reconcile:`` block, a repair that does
not fit the flow).
"""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import typer
from rich.markup import escape

from erpbridge.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    console,
    errors,
    fail,
    fill_credentials,
    load,
    store,
)

if TYPE_CHECKING:
    from erpbridge.engine.reconcile.run import Repair, Report

__all__ = ["reconcile"]

Format = Literal["table", "csv", "json"]
_CSV_COLUMNS = ("flow", "key", "kind", "field", "hub", "channel")


def reconcile(
    name: Annotated[str, typer.Argument(help="A flow, or an entity: each of its flows.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
    output: Annotated[
        str, typer.Option("--format", help="table, csv (the differences) or json.")
    ] = "table",
    limit: Annotated[
        int, typer.Option(min=0, help="Differences listed per flow (all are counted).")
    ] = 1000,
    repair: Annotated[
        str | None,
        typer.Option(
            help="Then repair: 'redeliver' (OUT flows: queue again what the channel lacks or "
            "holds stale) or 'reread' (IN flows: store what the hub lacks or holds stale)."
        ),
    ] = None,
) -> None:
    """Compare what a channel holds with what the hub holds (counts, keys missing on either
    side, fields that differ, sums of amounts); changes nothing unless --repair is given.
    Exit 1 on differences."""
    from erpbridge.engine.reconcile.repair import check_repair
    from erpbridge.engine.reconcile.run import Reconciler, ReconcileRefused
    from erpbridge.engine.reconcile.service import reconcile_flow

    if output not in ("table", "csv", "json"):
        raise fail(f"--format {output!r}: give table, csv or json", 2)
    kind: Repair | None = None
    if repair is not None:
        if repair not in ("redeliver", "reread"):
            raise fail(f"--repair {repair!r}: give redeliver or reread", 2)
        kind = "redeliver" if repair == "redeliver" else "reread"
    config = load(config_path)
    fill_credentials(config)
    engine = store(config)
    reconciler = Reconciler(config, engine)
    try:
        plans = reconciler.plans(name)
    except ReconcileRefused as exc:
        raise fail(str(exc), 2) from None
    repairing: set[str] = set()
    for plan in plans:
        if kind is None:
            break
        try:
            check_repair(config, plan.flow, kind)
        except ReconcileRefused as exc:
            if len(plans) == 1:
                raise fail(str(exc), 2) from None
            errors.print(f"note: {exc}; flow {plan.flow} is only compared", highlight=False)
        else:
            repairing.add(plan.flow)
    different = failed = False
    writer = csv.writer(sys.stdout) if output == "csv" else None
    if writer is not None:
        writer.writerow(_CSV_COLUMNS)
    for plan in plans:
        report, _ = reconcile_flow(
            config, engine, plan, trigger="manual", limit=limit,
            repair=kind if plan.flow in repairing else None,
        )  # fmt: skip
        if report.status == "failed":
            errors.print(
                f"[bold red]error:[/] {escape(report.error or '')}", highlight=False,
                soft_wrap=True,
            )  # fmt: skip
            failed = True
            if report.repair is None and output != "json":
                continue  # nothing was compared
        different = different or report.tally.differences > 0
        if output == "json":
            sys.stdout.write(orjson.dumps(report.as_json()).decode() + "\n")
        elif writer is not None:
            for d in report.differences:
                writer.writerow([plan.flow, d.key, d.kind, d.field or "",
                                 _cell(d.hub), _cell(d.channel)])  # fmt: skip
            errors.print(_summary(report), highlight=False, soft_wrap=True, markup=False)
        else:
            _table(report)
    if failed or different:
        raise typer.Exit(1)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _summary(report: Report) -> str:
    t = report.tally
    text = (
        f"flow {report.flow} (channel {report.channel}, {report.entity}): hub {t.hub}, "
        f"channel {t.channel}, matched {t.matched}, missing in channel {t.missing_in_channel}, "
        f"missing in hub {t.missing_in_hub}, differing {t.differing}"
    )
    if t.duplicates:
        text += f", duplicate keys in channel {t.duplicates}"
    if report.rejected:
        text += f", channel records not mappable {report.rejected}"
    for name, s in report.sums.items():
        text += f"; sum {name}: hub {s.hub}, channel {s.channel}, difference {s.hub - s.channel}"
    text += f" ({report.duration_s:.1f} s)"
    if report.repair == "redeliver":
        text += f"; repaired: {report.repaired} record(s) queued again for delivery"
    elif report.repair == "reread":
        text += f"; repaired: {report.repaired} record(s) re-read into the hub"
    return text


def _table(report: Report) -> None:
    from rich.table import Table

    console.print(_summary(report), highlight=False, soft_wrap=True, markup=False)
    for reason in report.rejects:
        console.print(f"  not mappable: {reason}", highlight=False, markup=False)
    if not report.differences:
        return
    table = Table(title=f"differences of flow {report.flow}")
    for column in ("key", "difference", "field", "hub", "channel"):
        table.add_column(column)
    for d in report.differences:
        kind = d.kind.replace("_", " ")
        table.add_row(d.key, kind, d.field or "", _cell(d.hub), _cell(d.channel))
    console.print(table)
    if report.truncated:
        console.print(
            f"(first {len(report.differences)} listed; --limit shows more)", highlight=False
        )
