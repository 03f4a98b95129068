"""saml requests

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 15:30:00

The back office's SAML sign-in requests awaiting their answer (``store.samlrequests``): an answer
must name one of them (InResponseTo), from the browser that started it, once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_requests",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("browser", sa.String(length=64), nullable=False),
        sa.Column("next_path", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_saml_requests")),
    )
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_requests_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_requests_expires_at"))
    op.drop_table("saml_requests")
