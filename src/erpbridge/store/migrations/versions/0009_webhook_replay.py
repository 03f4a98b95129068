"""webhook replay and stale versions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 04:20:00

- ``webhook_signatures``: the signatures of accepted webhooks, kept until they leave the
  timestamp tolerance, so that a replayed webhook is refused by every API process.
- ``runs.stale``: records of a run (or event) older than the stored version (the flow's
  ``version_field``), skipped rather than applied.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_signatures",
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "digest", name=op.f("pk_webhook_signatures")),
    )
    op.create_index(op.f("ix_webhook_signatures_expires_at"), "webhook_signatures", ["expires_at"])
    op.add_column("runs", sa.Column("stale", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("stale")
    op.drop_index(op.f("ix_webhook_signatures_expires_at"), table_name="webhook_signatures")
    op.drop_table("webhook_signatures")
