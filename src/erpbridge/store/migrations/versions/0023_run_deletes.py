"""deletes as versions: a run counts the records it turned into tombstones

- ``runs.deleted``: records of a run (or event) that became tombstone versions
  (``store.tombstones``). Tombstones themselves need no column: a deleted record's content hash
  is ``TOMBSTONE_HASH`` and its audit row's action ``deleted``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted")
