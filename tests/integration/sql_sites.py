"""An MES/ERP database on a real server, set up the way its owner would hand it to erpbridge.

One database per test on PostgreSQL (``ERPBRIDGE_TEST_PG_URL``, ``scripts/postgres.sh``) or
MariaDB (``ERPBRIDGE_TEST_MARIADB_URL``, ``scripts/mariadb.sh``), with three logins:

- the *owner* creates the tables and writes the MES data (plain SQL, the test's own hands);
- the *reader* may only SELECT: PostgreSQL CONNECT + USAGE + SELECT, MariaDB ``GRANT SELECT``;
- the *writer* may SELECT, INSERT and UPDATE one staging table (``erp_orders``) and nothing else.

The owner's MariaDB session runs in ``+01:00``, as an MES application writing the plant's wall
clock does; erpbridge must still see every TIMESTAMP as the right moment.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from integration.servers import require_server

__all__ = ["PLANT", "Site", "open_site"]

#: The owner's (and the MES application's) zone on MariaDB: CET in winter.
PLANT = timezone(timedelta(hours=1))

_TABLES = {
    "postgresql": [
        "CREATE TABLE {s}production_orders (id integer PRIMARY KEY, order_code varchar(20),"
        " product_code varchar(20), machine_code varchar(10), quantity numeric(12, 3),"
        " released boolean NOT NULL DEFAULT false, shift_start time, start timestamp(0),"
        ' "end" timestamp(0), updated_at timestamptz(6) NOT NULL)',
        'CREATE TABLE {s}bookings (id integer PRIMARY KEY, "timestamp" timestamp(6) NOT NULL,'
        " order_code varchar(20), product_code varchar(20), machine_code varchar(10),"
        " event varchar(10) NOT NULL)",
        "CREATE TABLE {s}erp_orders (order_no varchar(20) PRIMARY KEY, article varchar(20),"
        " qty numeric(12, 3) CHECK (qty >= 0), released boolean, started_at timestamptz,"
        " finished_at timestamp(0), version integer, delivery bigint)",
        "CREATE FUNCTION {s}touch_order(order_id integer) RETURNS integer LANGUAGE sql"
        " SECURITY DEFINER AS $$ UPDATE {s}production_orders SET quantity = 0"
        " WHERE id = order_id RETURNING id $$",
    ],
    "mysql": [
        "CREATE TABLE production_orders (id INT PRIMARY KEY, order_code VARCHAR(20),"
        " product_code VARCHAR(20), machine_code VARCHAR(10), quantity DECIMAL(12, 3),"
        " released BOOLEAN NOT NULL DEFAULT 0, shift_start TIME, start DATETIME, end DATETIME,"
        " updated_at TIMESTAMP(6) NOT NULL)",
        "CREATE TABLE bookings (id INT PRIMARY KEY, timestamp DATETIME(6) NOT NULL,"
        " order_code VARCHAR(20), product_code VARCHAR(20), machine_code VARCHAR(10),"
        " event VARCHAR(10) NOT NULL)",
        "CREATE TABLE erp_orders (order_no VARCHAR(20) PRIMARY KEY, article VARCHAR(20),"
        " qty DECIMAL(12, 3) CHECK (qty >= 0), released BOOLEAN, started_at TIMESTAMP NULL,"
        " finished_at DATETIME, version INT, delivery BIGINT)",
        "CREATE FUNCTION touch_order(order_id INT) RETURNS INT MODIFIES SQL DATA"
        " SQL SECURITY DEFINER BEGIN UPDATE production_orders SET quantity = 0"
        " WHERE id = order_id; RETURN ROW_COUNT(); END",
    ],
}

_ORDER_COLUMNS = [
    "id",
    "order_code",
    "product_code",
    "machine_code",
    "quantity",
    "released",
    "shift_start",
    "start",
    "end",
    "updated_at",
]
_BOOKING_COLUMNS = ["id", "timestamp", "order_code", "product_code", "machine_code", "event"]


@dataclass
class Site:
    """One MES/ERP database on a real server, with its owner, reader and writer logins."""

    dialect: str
    admin: sa.Engine
    base: URL
    database: str
    #: PostgreSQL keeps the tables in schema ``mes``; on MariaDB the database is the schema.
    schema: str | None
    users: dict[str, str]
    passwords: dict[str, str]
    owner: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        url = self.login_url("owner")
        # The MES application's session writes the plant's wall clock into TIMESTAMP columns.
        args = {"init_command": "SET time_zone = '+01:00'"} if self.dialect == "mysql" else {}
        self.owner = sa.create_engine(url, connect_args=args)

    def login_url(self, role: str, password: str | None = None) -> URL:
        """A URL of ``role``'s login, with its password or the one given."""
        secret = self.passwords[role] if password is None else password
        return self.base.set(username=self.users[role], password=secret, database=self.database)

    def options(self, role: str, **changes: Any) -> dict[str, Any]:
        """Channel options of ``role``'s login (password literal: built in code, not a file),
        with parts of its URL changed."""
        url = self.login_url(role).set(**changes).render_as_string(hide_password=False)
        return {"url": url, "schema": self.schema}

    def config_url(self, role: str, variable: str, **changes: Any) -> str:
        """The URL for a configuration file: the password as a ``${variable}`` reference."""
        url = self.base.set(username=self.users[role], password=None, database=self.database)
        url = url.set(**changes)
        text = url.render_as_string(hide_password=False)
        user = f"{self.users[role]}@"
        return text.replace(user, f"{self.users[role]}:${{{variable}}}@", 1)

    def qualified(self, table: str) -> str:
        """``table`` as plain SQL of the owner names it."""
        return f"{self.schema}.{table}" if self.schema else table

    def add(self, table: str, rows: list[Mapping[str, Any]]) -> None:
        """Insert ``rows`` as the owner; aware date-times as the owner's session shows them."""
        columns = _ORDER_COLUMNS if table == "production_orders" else _BOOKING_COLUMNS
        target = sa.table(table, *map(sa.column, columns), schema=self.schema)
        with self.owner.begin() as conn:
            conn.execute(sa.insert(target), [self._local(row) for row in rows])

    def change(self, table: str, row_id: int, **values: Any) -> None:
        """Update one row as the owner."""
        target = sa.table(table, *map(sa.column, ["id", *values]), schema=self.schema)
        statement = sa.update(target).where(target.c.id == row_id).values(self._local(values))
        with self.owner.begin() as conn:
            conn.execute(statement)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of plain SQL, run as the owner."""
        with self.owner.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]

    def _local(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if self.dialect != "mysql":
            return dict(row)
        # PyMySQL drops an offset: say the moment in the owner's session zone.
        return {
            k: v.astimezone(PLANT).replace(tzinfo=None)
            if isinstance(v, datetime) and v.tzinfo
            else v
            for k, v in row.items()
        }


def open_site(dialect: str) -> Iterator[Site]:
    """Create the database, logins and tables; drop them all afterwards."""
    if dialect == "postgresql":
        base = make_url(require_server("ERPBRIDGE_TEST_PG_URL", "PostgreSQL"))
    else:
        base = make_url(require_server("ERPBRIDGE_TEST_MARIADB_URL", "MariaDB"))
    suffix = uuid.uuid4().hex[:8]
    users = {role: f"{role}_{suffix}" for role in ("owner", "reader", "writer")}
    passwords = {role: secrets.token_hex(8) for role in users}
    database = f"mes_{suffix}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    site = Site(
        base.get_backend_name(),
        admin,
        base,
        database,
        "mes" if dialect == "postgresql" else None,
        users,
        passwords,
    )
    try:
        if dialect == "postgresql":
            _set_up_postgresql(site)
        else:
            _set_up_mariadb(site)
        yield site
    finally:
        site.owner.dispose()
        _tear_down(site)
        admin.dispose()


def _set_up_postgresql(site: Site) -> None:
    owner, reader, writer = (site.users[r] for r in ("owner", "reader", "writer"))
    with site.admin.connect() as conn:
        for role in site.users:
            conn.exec_driver_sql(
                f"CREATE ROLE {site.users[role]} LOGIN PASSWORD '{site.passwords[role]}'"
            )
        conn.exec_driver_sql(f"CREATE DATABASE {site.database} OWNER {owner}")
        conn.exec_driver_sql(f"REVOKE ALL ON DATABASE {site.database} FROM PUBLIC")
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {site.database} TO {reader}, {writer}")
    with site.owner.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA mes")
        for statement in _TABLES["postgresql"]:
            conn.exec_driver_sql(statement.format(s="mes."))
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA mes TO {reader}, {writer}")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA mes TO {reader}")
        conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE ON mes.erp_orders TO {writer}")


def _set_up_mariadb(site: Site) -> None:
    # PyMySQL formats every statement with %-style parameters: a literal % is written %%.
    database = site.database
    with site.admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
        for role in site.users:
            conn.exec_driver_sql(
                f"CREATE USER '{site.users[role]}'@'%%' IDENTIFIED BY '{site.passwords[role]}'"
            )
        conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON {database}.* TO '{site.users['owner']}'")
        conn.exec_driver_sql(f"GRANT SELECT ON {database}.* TO '{site.users['reader']}'")
    with site.owner.begin() as conn:
        for statement in _TABLES["mysql"]:
            conn.exec_driver_sql(statement.format(s=""))
    with site.admin.connect() as conn:
        writer = site.users["writer"]
        conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE ON {database}.erp_orders TO {writer}")


def _tear_down(site: Site) -> None:
    with site.admin.connect() as conn:
        if site.dialect == "postgresql":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {site.database} WITH (FORCE)")
            for user in site.users.values():
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {user}")
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {site.database}")
            for user in site.users.values():
                conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
