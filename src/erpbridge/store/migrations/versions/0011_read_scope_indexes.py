"""read scope indexes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:00:00.000000

A channel-restricted API client's search, when few records are visible to it, reads them by
``(channel, entity)`` from ``audit`` and ``deliveries`` (``store.read.scope``) instead of
probing every candidate.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


_BY_CHANNEL = ["channel", "entity", "record_id"]


def upgrade() -> None:
    op.create_index(
        op.f("ix_deliveries_channel_entity_record_id"), "deliveries", _BY_CHANNEL, unique=False
    )
    op.create_index(op.f("ix_audit_channel_entity_record_id"), "audit", _BY_CHANNEL, unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_channel_entity_record_id"), table_name="audit")
    op.drop_index(op.f("ix_deliveries_channel_entity_record_id"), table_name="deliveries")
