"""seen assertions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 04:30:00

The SAML assertions exchanged at ``/oauth/token`` (RFC 7522), kept until they expire so that a
captured assertion cannot be used a second time by any API process.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_assertions",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("assertion_id", sa.String(length=256), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_seen_assertions")),
    )
    with op.batch_alter_table("seen_assertions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_seen_assertions_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("seen_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_assertions_expires_at"))
    op.drop_table("seen_assertions")
