"""deliveries name the backfill or replay run that queued them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 12:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_id", _Id, nullable=True))
        batch_op.create_index(
            batch_op.f("ix_deliveries_run_id_state"), ["run_id", "state"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_run_id_state"))
        batch_op.drop_column("run_id")
