"""The alert rules against a real hub store: each ``when:`` fires for the subjects it should,
two evaluators on one store send each notification once, a claim whose notifiers all failed
is sent again on the next pass, and ``alerts:`` mistakes are reported by the loader with the
place and the cause."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from erpbridge.config.loader import LoadedConfig, load_config
from erpbridge.engine.alerting import AlertEvaluator
from erpbridge.errors import ConfigError
from erpbridge.observe.notify import Alert, NotifyError
from erpbridge.store import open_store
from erpbridge.store.read.alerts import alert_history_page, firing_alerts
from erpbridge.store.tables import deliveries, delivery_attempts, records, runs

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

BASE = """\
channels:
  shop: {system: folder, options: {path: inbox}}
  erp: {system: folder, options: {path: erp}}
flows:
  - {name: orders-in, channel: shop, entity: customer, direction: in, source: {pattern: "*.csv"},
     mapping: {code: {from: id}}}
  - {name: orders-out, channel: erp, entity: customer, direction: out, target: {format: json},
     mapping: {Kunde: code}}
"""


class Recorder:
    """A notifier that records what it was sent, or fails while ``down``."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []
        self.down = False

    def send(self, alert: Alert) -> None:
        if self.down:
            raise NotifyError("webhook 'rec': answered HTTP 503")
        self.sent.append(alert)


def _config(tmp_path: Path, alerts: str) -> LoadedConfig:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(BASE + textwrap.dedent(alerts), encoding="utf-8")
    return load_config(path, env={"HOOK": "s3cret-s3cret"})


RULES = """\
alerts:
  cooldown_s: 600
  notifiers: {rec: {webhook: {url: "http://127.0.0.1:9/", secret: "${HOOK}"}}}
  rules:
    - {name: failing, when: flow_failing, runs: 2, notify: [rec]}
    - {name: dead, when: dead_deliveries, notify: [rec]}
    - {name: backlog, when: backlog_age, older_than_s: 60, notify: [rec]}
    - {name: down, when: channel_down, for_s: 30, notify: [rec]}
    - {name: rejects, when: rejection_rate, above: 0.1, window_s: 3600, notify: [rec]}
"""


def _run(engine: Engine, flow: str, channel: str, status: str, at: datetime, **counts: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                flow=flow,
                channel=channel,
                entity="customer",
                mode="incremental",
                status=status,
                started_at=at,
                finished_at=at,
                error="connection refused" if status == "failed" else None,
                **counts,
            )
        )


def _delivery(engine: Engine, state: str, created: datetime, outcome: str | None = None) -> None:
    key = f"K{created.timestamp()}{state}"
    with engine.begin() as conn:
        record = conn.execute(
            insert(records).values(
                entity="customer",
                key=key,
                version=1,
                content_hash="0" * 32,
                payload="{}",
                created_at=created,
                updated_at=created,
            )
        )
        inserted = conn.execute(
            insert(deliveries).values(
                flow="orders-out",
                channel="erp",
                entity="customer",
                record_id=record.inserted_primary_key[0],
                key=key,
                version=1,
                ordering_key=key,
                idempotency_key=key,
                state=state,
                attempts=1,
                max_attempts=5,
                next_attempt_at=created,
                created_at=created,
                updated_at=created,
            )
        )
        if outcome is not None:
            conn.execute(
                insert(delivery_attempts).values(
                    delivery_id=inserted.inserted_primary_key[0],
                    attempt=1,
                    worker="w1",
                    fence=1,
                    started_at=created,
                    finished_at=created,
                    outcome=outcome,
                    error="503 from the ERP",
                )
            )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path / 'hub.db'}")


def test_each_rule_fires_for_its_subject_and_resolves(tmp_path: Path, engine: Engine) -> None:
    config = _config(tmp_path, RULES)
    rec = Recorder()
    evaluator = AlertEvaluator(config, engine, {"rec": rec})
    old = NOW - timedelta(minutes=5)
    _run(engine, "orders-in", "shop", "succeeded", old, read=10, rejected=5)
    _run(engine, "orders-in", "shop", "failed", old + timedelta(seconds=1))
    # One failed run (two wanted), shop down for 9 s (30 s wanted): only the rejections.
    first = evaluator.evaluate(NOW - timedelta(minutes=4, seconds=50))
    assert [(c.rule, c.subject, c.kind) for c in first] == [("rejects", "orders-in", "fired")]
    _run(engine, "orders-in", "shop", "failed", old + timedelta(seconds=2))
    _delivery(engine, "dead", old)
    _delivery(engine, "pending", old, outcome="retry")

    claims = evaluator.evaluate(NOW)
    assert sorted((c.rule, c.subject, c.kind) for c in claims) == [
        ("backlog", "orders-out", "fired"),
        ("dead", "orders-out", "fired"),
        ("down", "erp", "fired"),
        ("down", "shop", "fired"),
        ("failing", "orders-in", "fired"),
    ]
    messages = {(a.rule, a.subject): a.message for a in rec.sent}
    assert messages[("failing", "orders-in")].startswith(
        "flow 'orders-in' failed 2 run(s) in a row since 2026-12-07 11:55:01 UTC; run 3: "
        "connection refused"
    )
    assert messages[("rejects", "orders-in")] == (
        "flow 'orders-in' rejected 5 of 10 records (50.0%, limit 10.0%) in the last 3600 s"
    )
    assert (
        "channel 'erp' down since 2026-12-07 11:55:00 UTC (300 s): 503 from the ERP"
        in (messages[("down", "erp")])
    )
    # Nothing changed: nothing sent again within the cooldown.
    assert evaluator.evaluate(NOW + timedelta(seconds=30)) == []
    with engine.connect() as conn:
        assert len(firing_alerts(conn)) == 6

    # The IN flow recovers: its failing, its channel's down and (window passed) rejects resolve.
    _run(engine, "orders-in", "shop", "succeeded", NOW + timedelta(seconds=40), read=10)
    claims = evaluator.evaluate(NOW + timedelta(hours=2))
    resolved = sorted((c.rule, c.subject) for c in claims if c.kind == "resolved")
    assert resolved == [("down", "shop"), ("failing", "orders-in"), ("rejects", "orders-in")]
    # The rest fire still; two hours is past the cooldown: each is repeated.
    repeated = sorted((c.rule, c.subject) for c in claims if c.kind == "repeated")
    assert repeated == [("backlog", "orders-out"), ("dead", "orders-out"), ("down", "erp")]
    assert rec.sent[-1].kind in ("resolved", "repeated")


def test_two_evaluators_on_one_store_send_each_notification_once(
    tmp_path: Path, engine: Engine
) -> None:
    config = _config(tmp_path, RULES)
    first, second = Recorder(), Recorder()
    a = AlertEvaluator(config, engine, {"rec": first})
    b = AlertEvaluator(config, engine, {"rec": second})
    _delivery(engine, "dead", NOW - timedelta(minutes=1))
    assert [c.kind for c in a.evaluate(NOW)] == ["fired"]
    assert b.evaluate(NOW) == []
    assert b.evaluate(NOW + timedelta(minutes=11)) != []  # the cooldown: b repeats it
    assert a.evaluate(NOW + timedelta(minutes=11)) == []
    assert [x.kind for x in first.sent] == ["fired"] and [x.kind for x in second.sent] == [
        "repeated"
    ]


def test_a_claim_whose_notifiers_all_failed_is_sent_again(tmp_path: Path, engine: Engine) -> None:
    config = _config(tmp_path, RULES)
    rec = Recorder()
    evaluator = AlertEvaluator(config, engine, {"rec": rec})
    _delivery(engine, "dead", NOW - timedelta(minutes=1))
    rec.down = True
    assert [c.kind for c in evaluator.evaluate(NOW)] == ["fired"]
    assert rec.sent == []
    rec.down = False
    assert [c.kind for c in evaluator.evaluate(NOW + timedelta(seconds=30))] == ["fired"]
    assert [a.kind for a in rec.sent] == ["fired"]
    with engine.connect() as conn:
        history = alert_history_page(conn)
        [firing] = firing_alerts(conn)
    assert [(h["kind"], h["notified"]) for h in reversed(history)] == [
        ("fired", {"rec": "webhook 'rec': answered HTTP 503"}),
        ("fired", {"rec": "ok"}),
    ]
    assert firing["notifications"] == 1
    # A resolution that could not be sent is sent again too.
    with engine.begin() as conn:
        conn.execute(deliveries.update().values(state="delivered"))
    rec.down = True
    assert [c.kind for c in evaluator.evaluate(NOW + timedelta(seconds=60))] == ["resolved"]
    rec.down = False
    assert [c.kind for c in evaluator.evaluate(NOW + timedelta(seconds=90))] == ["resolved"]
    assert [a.kind for a in rec.sent] == ["fired", "resolved"]


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        (
            """\
            alerts:
              notifiers: {hook: {webhook: {url: "http://x/", secret: "plain"}}}
              rules: [{name: r, when: dead_deliveries, notify: [hook]}]
            """,
            "erpbridge.yaml:10 alerts.notifiers.hook.webhook.secret: write secrets as "
            "${ENV_VAR} references, never as literal values",
        ),
        (
            """\
            alerts:
              notifiers: {hook: {webhook: {url: "http://x/", secret: "${HOOK}"}}}
              rules: [{name: r, when: dead_deliveries, notify: [hoook]}]
            """,
            "erpbridge.yaml:11 alerts.rules[0].notify[0]: unknown notifier 'hoook' "
            "(notifiers: hook)",
        ),
        (
            """\
            alerts:
              notifiers: {hook: {webhook: {url: "http://x/", secret: "${HOOK}"}}}
              rules: [{name: r, when: flow_failing, flow: nope, notify: [hook]}]
            """,
            "erpbridge.yaml:11 alerts.rules[0].flow: unknown flow 'nope'",
        ),
        (
            """\
            alerts:
              notifiers: {both: {}}
            """,
            "erpbridge.yaml:10 alerts.notifiers.both: give exactly one of `webhook:` or `email:`",
        ),
    ],
)
def test_alert_mistakes_are_named_with_their_place(
    tmp_path: Path, alerts: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, alerts)
    assert expected in [str(p) for p in info.value.problems], info.value.problems
