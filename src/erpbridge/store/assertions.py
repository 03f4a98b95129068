"""Assertions already used: a SAML assertion opens the API once, whichever API process sees it.

Each accepted assertion is remembered (issuer and ID) until it expires; after that its own
validity window refuses it, so the row can go. The primary key makes the check atomic across
processes sharing the hub store: of two concurrent uses, one insert fails.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Engine

from erpbridge.errors import ErpbridgeError
from erpbridge.store.runs import now
from erpbridge.store.seenonce import record_once
from erpbridge.store.tables import seen_assertions

__all__ = ["AssertionReplayed", "remember_assertion"]


class AssertionReplayed(ErpbridgeError):
    """The assertion was used before (a replay, or a client sending one assertion twice)."""


def remember_assertion(
    engine: Engine, issuer: str, assertion_id: str, expires_at: datetime
) -> None:
    """Record the use of assertion ``assertion_id`` of ``issuer``, kept until ``expires_at``;
    raise :class:`AssertionReplayed` when it was used already."""
    digest = hashlib.sha256(f"{issuer}\n{assertion_id}".encode()).hexdigest()
    at = now()
    row = {
        "digest": digest,
        "issuer": issuer[:512],
        "assertion_id": assertion_id[:256],
        "seen_at": at,
        "expires_at": expires_at,
    }
    if not record_once(engine, seen_assertions, row, at=at):
        raise AssertionReplayed(
            f"assertion {assertion_id!r} of {issuer} was used already; "
            "ask the identity provider for a new one"
        )
