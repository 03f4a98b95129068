"""reconciliations

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 16:00:00

The results of ``erpbridge reconcile`` (by hand, scheduled, or through the API): one row per
flow compared, its counts and its report as JSON (``store.reconciliations``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("hub_count", sa.BigInteger(), nullable=False),
        sa.Column("channel_count", sa.BigInteger(), nullable=False),
        sa.Column("missing_in_channel", sa.BigInteger(), nullable=False),
        sa.Column("missing_in_hub", sa.BigInteger(), nullable=False),
        sa.Column("differing", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("repair", sa.String(length=16), nullable=True),
        sa.Column("repaired", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
    )
    with op.batch_alter_table("reconciliations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliations_flow_id"), ["flow", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliations_flow_id"))
    op.drop_table("reconciliations")
