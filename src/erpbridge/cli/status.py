"""``erpbridge status``: the hub's summary of what is failing, printed; exit 1 when anything is."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from erpbridge.cli.common import console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from erpbridge.config.loader import LoadedConfig

__all__ = ["print_alerts", "print_status", "summary"]


def summary(config: LoadedConfig, engine: Engine) -> dict[str, Any]:
    """The same summary as ``GET /api/v1/status`` (every channel), read from the hub store."""
    from erpbridge.store.read.alerts import firing_alerts
    from erpbridge.store.read.status import hub_status

    with engine.connect() as conn:
        return hub_status(
            conn,
            datetime.now(UTC),
            stale_backlog_s=config.model.hub.stale_backlog_s,
            firing=firing_alerts(conn, {rule.name for rule in config.model.alerts.rules}),
        ).as_dict()


def print_status(config: LoadedConfig, engine: Engine, *, as_json: bool = False) -> bool:
    """Print the summary; return whether all is well."""
    report = summary(config, engine)
    if as_json:
        _json(report)
        return bool(report["status"] == "ok")
    lines = _lines(report)
    headline = "FAILING" if lines else "OK"
    console.print(
        f"{headline}: {report['open_deliveries']} open deliveries"
        + (
            f", oldest {report['oldest_open_age_s']:.0f} s"
            if report["oldest_open_age_s"] is not None
            else ""
        ),
        highlight=False,
        markup=False,
    )
    for line in lines:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    if report["config_version"] is not None:
        console.print(
            f"configuration: version {report['config_version']} is the newest",
            highlight=False,
            markup=False,
        )
    for p in report["processes"]:
        console.print(
            f"  {p['role']} {p['host']}:{p['pid']} runs version {p['config_version']} "
            f"(loaded {p['loaded_at']}, last seen {p['seen_at']})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return not lines


def print_alerts(engine: Engine, *, rule: str | None, limit: int, as_json: bool) -> None:
    """The alerts firing now, then the history (newest first) with what each notifier said."""
    from rich.table import Table

    from erpbridge.store.read.alerts import alert_history_page, firing_alerts

    with engine.connect() as conn:
        firing = [a for a in firing_alerts(conn) if rule in (None, a["rule"])]
        history = alert_history_page(conn, rule=rule, limit=limit)
    if as_json:
        _json({"firing": firing, "history": history})
        return
    if firing:
        for a in firing:
            console.print(
                f"FIRING {a['rule']} ({a['subject']}) since {a['since']}: {a['message']}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    else:
        console.print("no alert is firing", highlight=False)
    table = Table("id", "at", "rule", "subject", "kind", "notified", "message")
    for h in history:
        notified = h["notified"] or {}
        answers = ", ".join(f"{name}: {answer}" for name, answer in notified.items())
        table.add_row(
            str(h["id"]), h["at"], h["rule"], h["subject"], h["kind"], answers, h["message"]
        )
    console.print(table, markup=False)


def _json(value: Any) -> None:
    """Print ``value`` as JSON as it is (rich would wrap long strings at the terminal width)."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"flow {f['flow']} (channel {f['channel']}): {f['failed_runs']} failed run(s) in a row "
        f"since {f['since']}, last run {f['last_run_id']}: {f['error'] or 'no error text'}"
        for f in report["flows_failing"]
    ]
    lines += [
        f"flow {d['flow']} (channel {d['channel']}): {d['count']} dead deliveries "
        "(erpbridge retry --dead)"
        for d in report["dead_deliveries"]
    ]
    lines += [
        f"flow {b['flow']} (channel {b['channel']}): oldest open delivery {b['oldest_age_s']:.0f} s"
        for b in report["old_backlog"]
    ]
    lines += [
        f"channel {c['channel']}: down since {c['since']}: {c['cause'] or 'no error text'}"
        for c in report["channels_down"]
    ]
    lines += [
        f"alert {a['rule']} ({a['subject']}): firing since {a['since']}: {a['message']}"
        for a in report["alerts_firing"]
    ]
    return lines
