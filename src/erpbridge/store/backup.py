"""Online backup and restore of the hub store.

SQLite uses its backup API: a consistent copy of the whole file taken page by page while other
processes keep reading and writing (WAL included). PostgreSQL uses ``pg_dump``'s custom format,
a consistent snapshot too, and ``pg_restore`` to bring it back. A restored store carries its
cursors, ledger and audit as they were at the backup: flows resume from those cursors and re-read
what came after (the hub's content hashes make the re-read harmless), and deliveries that were
open at the backup go out again (at least once).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL, make_url

from erpbridge.errors import StoreError

__all__ = ["BackupError", "Copied", "backup", "restore"]

#: Pages copied per step of SQLite's backup API; between steps writers may go on.
_PAGES_PER_STEP = 4096


class BackupError(StoreError):
    """A backup or restore could not be made; the message names the store and the cause."""


@dataclass(frozen=True)
class Copied:
    """What a backup or restore wrote: the file, its size, and the store's schema revision."""

    path: Path
    size: int
    schema: str | None


def backup(engine: Engine, dest: Path) -> Copied:
    """Copy the store behind ``engine`` to ``dest`` (which must not exist) while it runs."""
    if dest.exists():
        raise BackupError(f"{dest} exists: choose a new file for the backup")
    url = engine.url
    if url.get_backend_name() == "sqlite":
        _sqlite_copy(_sqlite_path(url), dest)
    elif url.get_backend_name() == "postgresql":
        _run("pg_dump", "--format=custom", "--no-owner", f"--file={dest}", url=url)
    else:
        raise BackupError(f"no backup for {url.get_backend_name()} stores: use its own tools")
    return Copied(dest, dest.stat().st_size, _schema_of(dest) if _is_sqlite(url) else None)


def restore(url: str, source: Path, *, force: bool = False) -> Copied:
    """Bring the backup ``source`` back into the store at ``url``.

    Refuses to overwrite a store that holds tables unless ``force``: a restore replaces
    everything the hub learnt since the backup. Stop every process of the hub first.
    """
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    parsed = make_url(url)
    if _is_sqlite(parsed):
        schema = _schema_of(source)
        if schema is None:
            raise BackupError(f"{source} is not a backup of an erpbridge hub (no schema version)")
        target = _sqlite_path(parsed)
        if not force and target.exists() and _has_tables(target):
            raise BackupError(f"{target} holds a hub already: restore over it with --force")
        _sqlite_copy(source, target)
        return Copied(target, target.stat().st_size, schema)
    if parsed.get_backend_name() == "postgresql":
        if not force and _pg_has_tables(url):
            raise BackupError(
                f"{parsed.render_as_string(hide_password=True)} holds tables already: "
                "restore over them with --force"
            )
        _run("pg_restore", "--clean", "--if-exists", "--no-owner", "--exit-on-error", str(source),
             url=parsed)  # fmt: skip
        return Copied(source, source.stat().st_size, None)
    raise BackupError(f"no restore for {parsed.get_backend_name()} stores: use its own tools")


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"the SQLite store {url} is not a plain file")
    return Path(database)


def _sqlite_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():  # private like the store itself (the key to its secrets lies beside)
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with sqlite3.connect(source) as src, sqlite3.connect(dest) as dst:
            src.backup(dst, pages=_PAGES_PER_STEP)
            dst.execute("PRAGMA journal_mode=WAL")
        src.close()
        dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source} to {dest}: {exc}") from None


def _schema_of(path: Path) -> str | None:
    """The Alembic revision stored in the SQLite file ``path``, ``None`` when it has none."""
    try:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
        db.close()
    except sqlite3.Error:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def _has_tables(path: Path) -> bool:
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    db.close()
    return bool(count[0])


def _pg_has_tables(url: str) -> bool:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _run(tool: str, *args: str, url: URL) -> None:
    """Run a PostgreSQL client tool against ``url``; the password goes by environment, never on
    the command line (where ``ps`` would show it)."""
    path = shutil.which(tool)
    if path is None:
        raise BackupError(f"{tool} is not installed (Debian: apt-get install postgresql-client)")
    env = {**os.environ}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    dsn = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    done = subprocess.run(  # noqa: S603 - a fixed tool with arguments the hub built
        [path, *args, f"--dbname={dsn}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        masked = url.render_as_string(hide_password=True)
        raise BackupError(f"{tool} for {masked} failed: {done.stderr.strip() or done.returncode}")
