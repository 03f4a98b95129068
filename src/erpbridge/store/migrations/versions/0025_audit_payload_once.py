"""the audit keeps no second copy of a record's current payload

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 18:40:00

``audit.payload`` becomes nullable: the audit row of a record's current version stores none
(the record holds it; ``store.tables.AuditPayload`` reads ``COALESCE(payload, the record's)``).
A trigger on ``records`` moves the payload a record had into the audit row of that version when
its version or payload changes, whoever writes the record, so a superseded version keeps its
payload in the audit as before. The upgrade empties the payloads of existing current versions
that equal their record's (the space is reused by later writes; ``VACUUM`` gives it back to
the file system).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_KEEP = (
    "UPDATE audit SET payload = OLD.payload "
    "WHERE record_id = OLD.id AND version = OLD.version AND payload IS NULL"
)
_CURRENT = (
    "UPDATE audit SET payload = NULL WHERE payload = (SELECT r.payload FROM records AS r "
    "WHERE r.id = audit.record_id AND r.version = audit.version)"
)
_RESTORE = (
    "UPDATE audit SET payload = (SELECT r.payload FROM records AS r "
    "WHERE r.id = audit.record_id) WHERE payload IS NULL"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        with op.batch_alter_table("audit") as batch:
            batch.alter_column("payload", existing_type=sa.Text(), nullable=True)
        op.execute(
            "CREATE TRIGGER records_keep_audit_payload AFTER UPDATE OF version, payload "
            "ON records FOR EACH ROW WHEN OLD.version IS NOT NEW.version "
            f"OR OLD.payload IS NOT NEW.payload BEGIN {_KEEP}; END"
        )
    else:
        op.alter_column("audit", "payload", existing_type=sa.Text(), nullable=True)
        op.execute(
            "CREATE FUNCTION records_keep_audit_payload() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_KEEP}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER records_keep_audit_payload AFTER UPDATE OF version, payload "
            "ON records FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version "
            "OR OLD.payload IS DISTINCT FROM NEW.payload) "
            "EXECUTE FUNCTION records_keep_audit_payload()"
        )
    op.execute(_CURRENT)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP TRIGGER IF EXISTS records_keep_audit_payload" + (
        "" if dialect == "sqlite" else " ON records"))  # fmt: skip
    if dialect != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS records_keep_audit_payload()")
    op.execute(_RESTORE)
    if dialect == "sqlite":
        with op.batch_alter_table("audit") as batch:
            batch.alter_column("payload", existing_type=sa.Text(), nullable=False)
    else:
        op.alter_column("audit", "payload", existing_type=sa.Text(), nullable=False)
