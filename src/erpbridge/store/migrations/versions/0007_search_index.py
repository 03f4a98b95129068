"""search index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 02:10:00

The search help's table, plus the substring index each dialect offers, which ``tables.py``
cannot declare (``store.database.include_name`` keeps autogenerate off them):

- SQLite: one FTS5 ``trigram`` table per searchable entity (SQLite ≥ 3.34), ``search_fts_<entity>``,
  made by ``store.searchindex`` when the entity's first record is indexed: entities come from
  the configuration, so this migration cannot know them. Downgrading drops them all.
- PostgreSQL: the ``pg_trgm`` extension and a GIN trigram index on ``search_index.text``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_FOLDED = sa.String(length=512).with_variant(sa.String(length=512, collation="C"), "postgresql")

_POSTGRESQL_UP = (
    # pg_trgm is a trusted extension (PostgreSQL ≥ 13): the database owner may create it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_search_index_text_trgm ON search_index USING gin (text gin_trgm_ops)",
)
_POSTGRESQL_DOWN = ("DROP INDEX IF EXISTS ix_search_index_text_trgm",)


def upgrade() -> None:
    op.create_table(
        "search_index",
        sa.Column(
            "record_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("key_folded", _FOLDED, nullable=False),
        sa.Column("label_folded", _FOLDED, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], name=op.f("fk_search_index_record_id_records")
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_search_index")),
    )
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_search_index_entity_key_folded"), ["entity", "key_folded"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_search_index_entity_label_folded"),
            ["entity", "label_folded"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRESQL_UP:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in _POSTGRESQL_DOWN:
            op.execute(statement)
    if bind.dialect.name == "sqlite":
        found = bind.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search\\_fts\\_%' "
            "ESCAPE '\\' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        )
        for (name,) in list(found):
            op.execute(f'DROP TABLE "{name}"')
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_index_entity_label_folded"))
        batch_op.drop_index(batch_op.f("ix_search_index_entity_key_folded"))
    op.drop_table("search_index")
