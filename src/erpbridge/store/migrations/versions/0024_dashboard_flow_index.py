"""dashboard index by flow

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 16:00:00

The dashboard (``store.read.dashboard``) reads every flow's delivery backlog and its deliveries
of the last day from one index alone: ``(state, flow, delivered_at, created_at, updated_at)``
replaces 0017's ``(state, delivered_at, flow)``, so that each flow's day is a range of its own
(no sort of the whole day) and the backlog's times need no table row.
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_OLD = ["state", "delivered_at", "flow"]
_NEW = ["state", "flow", "delivered_at", "created_at", "updated_at"]


def upgrade() -> None:
    op.drop_index(op.f("ix_deliveries_state_delivered_at_flow"), table_name="deliveries")
    op.create_index(
        op.f("ix_deliveries_state_flow_delivered_at_created_at_updated_at"),
        "deliveries",
        _NEW,
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_deliveries_state_flow_delivered_at_created_at_updated_at"),
        table_name="deliveries",
    )
    op.create_index(op.f("ix_deliveries_state_delivered_at_flow"), "deliveries", _OLD, unique=False)
