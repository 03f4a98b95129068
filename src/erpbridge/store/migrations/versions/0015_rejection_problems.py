"""rejections: every failing field, and who dismissed one and why

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rejected", schema=None) as batch_op:
        batch_op.add_column(sa.Column("problems", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rejected", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("problems")
