"""documents and their gapless number sequences

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_IMMUTABLE = "a stored document is immutable"


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("template", sa.String(length=128), nullable=False),
        sa.Column("record_id", _Id, nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.String(length=64), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("number", sa.String(length=128), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_documents_record_id_records")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint(
            "record_id", "version", "template", name=op.f("uq_documents_record_id_version_template")
        ),
        sa.UniqueConstraint("sequence", "year", "seq", name=op.f("uq_documents_sequence_year_seq")),
    )
    op.create_index(op.f("ix_documents_template_id"), "documents", ["template", "id"])
    op.create_table(
        "document_sequences",
        sa.Column("sequence", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", "year", name=op.f("pk_document_sequences")),
    )
    # The stored bytes and their number never change: the database itself refuses an UPDATE.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION documents_immutable() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_IMMUTABLE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER documents_immutable BEFORE UPDATE ON documents "
            "FOR EACH ROW EXECUTE FUNCTION documents_immutable()"
        )
    else:
        op.execute(
            "CREATE TRIGGER documents_immutable BEFORE UPDATE ON documents "
            f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS documents_immutable"
        + (" ON documents" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS documents_immutable()")
    op.drop_table("document_sequences")
    op.drop_index(op.f("ix_documents_template_id"), table_name="documents")
    op.drop_table("documents")
