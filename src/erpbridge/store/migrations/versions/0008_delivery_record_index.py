"""delivery record index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:20:00.000000

A channel-restricted API client sees a record when it goes out to one of its channels
(``store.read.scope``): that look-up is by ``deliveries.record_id``, which had no index.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_deliveries_record_id"), "deliveries", ["record_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_record_id"), table_name="deliveries")
