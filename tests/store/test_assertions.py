"""Assertions used once: remembered until they expire, refused a second time, on both dialects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from erpbridge.store import open_store
from erpbridge.store.assertions import AssertionReplayed, remember_assertion
from erpbridge.store.runs import now
from erpbridge.store.tables import seen_assertions

IDP = "https://idp.example.test/saml2"


def test_second_use_is_refused_and_expired_ones_are_forgotten(hub_url: str) -> None:
    engine = open_store(hub_url)
    try:
        remember_assertion(engine, IDP, "id-1", now() + timedelta(minutes=5))
        with pytest.raises(AssertionReplayed, match=r"'id-1' of https://idp\.example\.test/saml2"):
            remember_assertion(engine, IDP, "id-1", now() + timedelta(minutes=5))
        # Another IdP may pick the same ID; an ID far longer than the column is still one key.
        remember_assertion(engine, "https://other.example.test", "id-1", now() + timedelta(1))
        remember_assertion(engine, IDP, "x" * 2000, now() + timedelta(minutes=5))
        with pytest.raises(AssertionReplayed):
            remember_assertion(engine, IDP, "x" * 2000, now() + timedelta(minutes=5))
        remember_assertion(engine, IDP, "id-old", now() - timedelta(seconds=1))
        remember_assertion(engine, IDP, "id-2", now() + timedelta(minutes=5))  # sweeps id-old
        with engine.connect() as conn:
            kept = set(conn.execute(select(seen_assertions.c.assertion_id)).scalars())
        assert kept == {"id-1", "x" * 256, "id-2"}
    finally:
        engine.dispose()
