"""The SQL transport against a real PostgreSQL server: read-only role, cursor, refused writes.

Needs ``ERPBRIDGE_TEST_PG_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:55432/postgres``)
naming a user that may create roles; skipped without it, except under CI or ``make test``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from erpbridge.errors import ReadOnlyViolation
from erpbridge.transports.base import Batch
from erpbridge.transports.sql.read import SqlChannelOptions, SqlStreamOptions, SqlTransport
from integration.servers import require_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def admin_url() -> URL:
    return make_url(require_server("ERPBRIDGE_TEST_PG_URL", "PostgreSQL"))


@pytest.fixture
def erp(admin_url: URL) -> Iterator[dict[str, Any]]:
    """A schema owned by an owner role, with a reader role that may only SELECT."""
    suffix = uuid.uuid4().hex[:8]
    schema, owner, reader = f"erp_{suffix}", f"erp_owner_{suffix}", f"erp_reader_{suffix}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    setup = [
        f"CREATE ROLE {owner} LOGIN PASSWORD 'owner-pw'",
        f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw'",
        f"CREATE SCHEMA {schema} AUTHORIZATION {owner}",
        f"SET ROLE {owner}",
        f"CREATE TABLE {schema}.orders (id serial PRIMARY KEY, updated_at timestamptz,"
        " total numeric(10, 2), note text)",
        f"GRANT USAGE ON SCHEMA {schema} TO {reader}",
        f"GRANT SELECT ON {schema}.orders TO {reader}",
        "RESET ROLE",
    ]
    try:
        with admin.connect() as conn:
            for statement in setup:
                conn.exec_driver_sql(statement)
        yield {
            "admin": admin,
            "schema": schema,
            "owner_url": admin_url.set(username=owner, password="owner-pw"),
            "reader_url": admin_url.set(username=reader, password="reader-pw"),
        }
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            for role in (reader, owner):
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def insert(erp: dict[str, Any], *rows: tuple[int, datetime, str, str]) -> None:
    with erp["admin"].connect() as conn:
        for row in rows:
            conn.execute(
                sa.text(
                    f"INSERT INTO {erp['schema']}.orders (id, updated_at, total, note)"
                    " VALUES (:id, :at, :total, :note)"
                ),
                dict(zip(("id", "at", "total", "note"), row, strict=True)),
            )


def transport(url: URL, schema: str, tmp_path: Path) -> SqlTransport:
    options = SqlChannelOptions.model_validate(
        {"url": url.render_as_string(hide_password=False), "schema": schema}
    )
    return SqlTransport("erp", options, tmp_path)


def ids(batches: list[Batch]) -> list[int]:
    return [r.data["id"] for b in batches for r in b.records]


def test_a_read_only_role_reads_by_cursor_and_no_login_can_write_through_the_channel(
    erp: dict[str, Any], tmp_path: Path
) -> None:
    noon = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    insert(erp, *[(i, noon, f"{i}.50", "a%") for i in (7, 2, 9, 4, 5)])
    insert(erp, (1, datetime(2024, 3, 1, 11, 0, tzinfo=UTC), "1.00", "plain"))
    stream = SqlStreamOptions.model_validate(
        {"table": "orders", "cursor": {"column": "updated_at", "tiebreaker": "id"}}
    )

    reader = transport(erp["reader_url"], erp["schema"], tmp_path)
    try:
        assert reader.health().detail.startswith("postgresql 1")
        batches = list(reader.read(stream, None, 2, frozenset({"total"})))
        cursor = orjson.loads(orjson.dumps(batches[-1].cursor))
        insert(erp, (3, noon, "3.00", "late"))  # committed late, with the boundary value
        again = list(reader.read(stream, cursor, 2, frozenset()))
        # `::` casts and `%` pass through text() and psycopg untouched.
        query = SqlStreamOptions(
            query=f"SELECT id, total::text AS total FROM {erp['schema']}.orders"
            " WHERE note LIKE 'a%' ORDER BY id"
        )
        rows = [dict(r.data) for b in reader.read(query, None, 10, frozenset()) for r in b.records]
    finally:
        reader.close()

    assert ids(batches) == [1, 2, 4, 5, 7, 9]
    first = batches[0].records[0].data
    assert first["updated_at"] == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)  # aware stays aware
    assert first["total"] == Decimal("1.00")
    assert cursor == {
        "value": "2024-03-01T12:00:00+00:00",
        "type": "datetime",
        "key": {"value": 9, "type": "int"},
        "column": "updated_at",
    }
    assert ids(again) == [2, 3, 4, 5, 7, 9]
    assert rows == [{"id": i, "total": f"{i}.50"} for i in (2, 4, 5, 7, 9)]

    # The owner may write to the table, yet not through the channel: the transaction is read-only.
    owner = transport(erp["owner_url"], erp["schema"], tmp_path)
    try:
        sequence = SqlStreamOptions(query=f"SELECT nextval('{erp['schema']}.orders_id_seq')")
        with pytest.raises(ReadOnlyViolation, match="read-only transaction"):
            list(owner.read(sequence, None, 10, frozenset()))
        with pytest.raises(ReadOnlyViolation), owner._read_only() as conn:
            conn.exec_driver_sql(f"DELETE FROM {erp['schema']}.orders")
    finally:
        owner.close()
    with erp["admin"].connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {erp['schema']}.orders").scalar() == 7
