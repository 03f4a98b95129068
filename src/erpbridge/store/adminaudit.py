"""The administrative audit: who did what, when, from which address, and how it went.

Written by the API (the client's name and address) and by the command line (``cli:<OS user>``)
for every action that changes who may do what or what the hub does: clients added and revoked,
credentials stored, flows paused, deliveries retried or cancelled, secrets rotated.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine

from erpbridge.observe.events import admin_action
from erpbridge.pci import redact_card_numbers
from erpbridge.store.runs import now
from erpbridge.store.tables import admin_audit

__all__ = ["record_action"]


def record_action(
    engine: Engine,
    actor: str,
    address: str | None,
    action: str,
    target: str | None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one action to the audit (and log it: event ``admin.action``)."""
    admin_action(
        actor=actor, address=address, action=action, target=target, outcome=outcome, detail=detail
    )
    with engine.begin() as conn:
        conn.execute(
            admin_audit.insert().values(
                at=now(),
                actor=actor,
                address=address,
                action=action,
                target=None if target is None else redact_card_numbers(target),
                outcome=outcome,
                detail=redact_card_numbers(orjson.dumps(detail).decode()) if detail else None,
            )
        )
