"""Configuration versions kept in the hub, and the version each serving process runs.

A version is the YAML text as a process loaded it, with who made it current and how (``start``,
``reload``, ``rollback``). Loading the same text as the newest version records nothing new: the
version numbers count real changes. Processes poll :func:`newest_version` to pick up a reload
made elsewhere (``erpbridge reload``, another process's API).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from erpbridge.store.runlease import aware
from erpbridge.store.tables import config_processes, config_versions

__all__ = [
    "ConfigVersion",
    "ProcessVersion",
    "digest",
    "forget_process",
    "get_version",
    "list_processes",
    "list_versions",
    "newest_version",
    "record_version",
    "set_process_version",
    "text_diff",
    "touch_process",
    "unified",
]


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One kept configuration: its number, text, digest, who made it current, how and when."""

    id: int
    sha256: str
    text: str
    actor: str
    action: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProcessVersion:
    """The configuration version a serving process runs, and when it was last heard of."""

    host: str
    pid: int
    role: str
    version_id: int
    loaded_at: datetime
    seen_at: datetime


def now() -> datetime:
    """The time versions and processes are stamped with (UTC)."""
    return datetime.now(UTC)


def digest(text: str) -> str:
    """The SHA-256 of a configuration text (what tells two versions apart)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _version(row: Any) -> ConfigVersion:
    return ConfigVersion(row.id, row.sha256, row.text, row.actor, row.action, aware(row.created_at))


def newest_version(conn: Connection) -> ConfigVersion | None:
    """The configuration made current last, or ``None`` before any."""
    row = conn.execute(
        select(config_versions).order_by(config_versions.c.id.desc()).limit(1)
    ).first()
    return None if row is None else _version(row)


def get_version(conn: Connection, version_id: int) -> ConfigVersion | None:
    """Version ``version_id``, or ``None``."""
    row = conn.execute(select(config_versions).where(config_versions.c.id == version_id)).first()
    return None if row is None else _version(row)


def list_versions(conn: Connection, limit: int = 50) -> list[ConfigVersion]:
    """The newest ``limit`` versions, newest first."""
    query = select(config_versions).order_by(config_versions.c.id.desc()).limit(limit)
    return [_version(row) for row in conn.execute(query)]


def record_version(conn: Connection, text: str, actor: str, action: str) -> tuple[int, bool]:
    """Make ``text`` the current version; return (its id, whether a new version was written).

    The newest version with the same text is reused, unless ``action`` is ``rollback`` (going
    back is a change worth its own number)."""
    sha = digest(text)
    newest = newest_version(conn)
    if newest is not None and newest.sha256 == sha and action != "rollback":
        return newest.id, False
    result = conn.execute(
        insert(config_versions).values(
            sha256=sha, text=text, actor=actor[:255], action=action, created_at=now()
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0]), True


def set_process_version(conn: Connection, host: str, pid: int, role: str, version_id: int) -> None:
    """Record that process ``host``/``pid`` now runs ``version_id``."""
    at = now()
    where = (config_processes.c.host == host) & (config_processes.c.pid == pid)
    conn.execute(delete(config_processes).where(where))
    conn.execute(
        insert(config_processes).values(
            host=host, pid=pid, role=role, version_id=version_id, loaded_at=at, seen_at=at
        )
    )


def forget_process(conn: Connection, host: str, pid: int) -> None:
    """The process stopped: it runs no version any more."""
    where = (config_processes.c.host == host) & (config_processes.c.pid == pid)
    conn.execute(delete(config_processes).where(where))


def touch_process(conn: Connection, host: str, pid: int) -> None:
    """The process is still there (its poll went round)."""
    where = (config_processes.c.host == host) & (config_processes.c.pid == pid)
    conn.execute(update(config_processes).where(where).values(seen_at=now()))


def list_processes(conn: Connection) -> list[ProcessVersion]:
    """Every serving process that registered, most recently seen first."""
    query = select(config_processes).order_by(config_processes.c.seen_at.desc())
    return [
        ProcessVersion(r.host, r.pid, r.role, r.version_id, aware(r.loaded_at), aware(r.seen_at))
        for r in conn.execute(query)
    ]


def unified(old: ConfigVersion, new: ConfigVersion) -> str:
    """A unified diff of two versions' texts, headed by their numbers ('' when the same)."""
    return text_diff(old.text, new.text, f"version {old.id}", f"version {new.id}")


def text_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two configuration texts ('' when the same)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )
