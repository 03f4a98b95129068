"""the transition log, append-only

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_REFUSAL = "the transition log is append-only"


def upgrade() -> None:
    op.create_table(
        "transitions",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("record_id", _Id, nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("field", sa.String(length=128), nullable=False),
        sa.Column("from_state", sa.String(length=128), nullable=True),
        sa.Column("to_state", sa.String(length=128), nullable=False),
        sa.Column("transition", sa.String(length=128), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("run_id", _Id, nullable=True),
        sa.Column("idempotency_key", sa.String(length=256), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_transitions_record_id_records")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.UniqueConstraint(
            "record_id",
            "actor",
            "idempotency_key",
            name=op.f("uq_transitions_record_id_actor_idempotency_key"),
        ),
    )
    op.create_index(
        op.f("ix_transitions_record_id_id"), "transitions", ["record_id", "id"], unique=False
    )
    op.create_index(op.f("ix_transitions_entity_at"), "transitions", ["entity", "at"], unique=False)
    # Append-only in the database itself, whoever writes to it.
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER transitions_no_{event.lower()} BEFORE {event} ON transitions "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"
            )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_REFUSAL}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER transitions_append_only BEFORE UPDATE OR DELETE ON transitions "
            "FOR EACH ROW EXECUTE FUNCTION transitions_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS transitions_no_update")
        op.execute("DROP TRIGGER IF EXISTS transitions_no_delete")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transitions_append_only ON transitions")
        op.execute("DROP FUNCTION IF EXISTS transitions_append_only()")
    op.drop_index(op.f("ix_transitions_entity_at"), table_name="transitions")
    op.drop_index(op.f("ix_transitions_record_id_id"), table_name="transitions")
    op.drop_table("transitions")
