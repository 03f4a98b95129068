"""The store's own writers take card numbers out, whatever their callers hand them (PCI DSS):
run errors and warnings, rejections, delivery errors and ids, the admin audit."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from erpbridge.store import open_store
from erpbridge.store.adminaudit import record_action
from erpbridge.store.deliveries import Outcome
from erpbridge.store.runs import Rejection, add_rejections, finish_run, start_run
from erpbridge.store.tables import admin_audit, rejected, runs

CARD = "4111.1111.1111.1111"


def _clean(text: str | None) -> bool:
    return text is not None and "4111" not in text and "1111111111" not in text.replace(".", "")


def test_runs_rejections_and_audit_are_stored_without_the_number(hub_url: str) -> None:
    engine = open_store(hub_url)
    run_id = start_run(
        engine, flow="f", channel="c", entity="customer", mode="full", dry_run=False,
        cursor_before=None,
    )  # fmt: skip
    finish_run(
        engine, run_id, status="failed", error=f"channel said: card {CARD} declined",
        warnings=[f"row 3: {CARD}"],
    )  # fmt: skip
    with engine.begin() as conn:
        add_rejections(
            conn, flow="f", channel="c", entity="customer", run_id=run_id,
            items=[Rejection(f"file-{CARD}.csv:2", f"bad value {CARD!r}", "notes",
                             {"notes": CARD, "ok": "x"}, CARD.replace(".", ""))],
        )  # fmt: skip
    record_action(engine, "admin", "127.0.0.1", "flow.run", f"flow {CARD}", detail={"n": CARD})
    with engine.connect() as conn:
        run = conn.execute(select(runs)).one()
        rejection = conn.execute(select(rejected)).one()
        action = conn.execute(select(admin_audit)).one()
    engine.dispose()
    assert _clean(run.error) and "[card number removed]" in run.error
    assert _clean(run.warnings)
    assert _clean(rejection.reason)
    assert orjson.loads(rejection.payload) == {"notes": "[card number removed]", "ok": "x"}
    assert rejection.external_id == "411111******1111"
    assert _clean(action.target) and _clean(action.detail)


def test_delivery_outcomes_are_redacted() -> None:
    claim: Any = None
    outcome = Outcome(claim, "dead", error=f"target answered 400: {CARD}", external_id=CARD)
    assert outcome.error == "target answered 400: [card number removed]"
    assert outcome.external_id == "411111******1111"
