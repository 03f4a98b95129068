"""Reloading a serving process's configuration without a restart.

A reload reads the configuration file again and checks it the way ``erpbridge check`` does.
An invalid file is refused with every problem (:class:`ConfigRefused`) and the running
configuration stays; a valid one is handed to the process's parts (``apply``), kept in the hub
as a version (who, when, how) and recorded as the version this process runs.

What triggers one: SIGHUP, ``POST /api/v1/config/reload`` (this process), and a new version in
the hub (``erpbridge reload``, another process's reload or a rollback), seen by a poll every
``interval`` seconds. On the poll a process reloads only when its own file changed, so
processes whose files differ never undo each other.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine

from erpbridge.config.loader import LoadedConfig, parse_config
from erpbridge.engine.credentials import apply_stored_credentials, stored_names
from erpbridge.engine.failures import FailureLog
from erpbridge.errors import ConfigError, ErpbridgeError
from erpbridge.observe.events import config_reloaded
from erpbridge.store.configversions import (
    digest,
    forget_process,
    get_version,
    newest_version,
    record_version,
    set_process_version,
    touch_process,
)
from erpbridge.store.outage import masked_url
from erpbridge.store.runlease import this_process
from erpbridge.store.secretbox import SecretBox

__all__ = [
    "ConfigRefused",
    "Reloaded",
    "Reloader",
    "VersionConflict",
    "check_text",
    "write_atomically",
]

log = logging.getLogger(__name__)


class ConfigRefused(ErpbridgeError):
    """A configuration that cannot be loaded: every problem, as ``erpbridge check`` prints it.
    Nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"configuration refused ({len(problems)} problem(s)); the running one stays: "
            + "; ".join(problems[:5])
        )


class VersionConflict(ErpbridgeError):
    """An edit based on a version that is no longer the running one."""

    def __init__(self, base: int, running: int) -> None:
        self.base, self.running = base, running
        super().__init__(
            f"the edit is based on version {base}, but version {running} runs now: "
            "reload the page and edit again"
        )


@dataclass(frozen=True, slots=True)
class Reloaded:
    """A reload's outcome: the version now running; ``changed``: the text differed."""

    version_id: int
    changed: bool


def check_text(text: str, path: Path) -> LoadedConfig:
    """``text`` loaded as the configuration file ``path``; :class:`ConfigRefused` if it is not
    valid."""
    try:
        return parse_config(text, path)
    except ConfigError as exc:
        raise ConfigRefused(
            [str(p) + (f" ({p.hint})" if p.hint else "") for p in exc.problems]
        ) from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigRefused([f"{path}: cannot read the file: {exc}"]) from None


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text`` in one step, keeping its mode."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Reloader:
    """One serving process's configuration: reload, roll back, SIGHUP, the hub poll."""

    def __init__(
        self,
        config: LoadedConfig,
        engine: Engine,
        role: str,
        apply: Callable[[LoadedConfig], None],
        *,
        interval: float = 2.0,
    ) -> None:
        self.path = config.path
        self.engine = engine
        self.role = role
        self.apply = apply
        self.interval = interval
        me = this_process()
        self.host, self.pid = me.host, me.pid
        self._lock = threading.Lock()
        self._hup = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        text = _read(self.path)
        self.sha = digest(text)
        with engine.begin() as conn:
            self.version_id, _ = record_version(
                conn, text, f"{role} {self.host}:{self.pid}", "start"
            )
            set_process_version(conn, self.host, self.pid, role, self.version_id)
        self._seen = self.version_id

    def reload(self, actor: str, action: str = "reload") -> Reloaded:
        """Load the file again; apply it if it changed; keep it as a version by ``actor``.
        :class:`ConfigRefused` (and nothing changed) if it is not valid."""
        with self._lock:
            text = _read(self.path)
            try:
                config = check_text(text, self.path)
            except ConfigRefused as exc:
                config_reloaded(path=str(self.path), outcome="refused", actor=actor, cause=str(exc))
                raise
            sha = digest(text)
            changed = sha != self.sha
            if changed:
                self._credentials(config)
                self.apply(config)
            with self.engine.begin() as conn:
                version_id, _ = record_version(conn, text, actor, action)
                set_process_version(conn, self.host, self.pid, self.role, version_id)
            self.sha, self.version_id = sha, version_id
            self._seen = max(self._seen, version_id)
            config_reloaded(path=str(self.path), outcome="ok", version=version_id, actor=actor)
            log.warning(
                "configuration %s: version %d (%s by %s)",
                self.path,
                version_id,
                action if changed else "unchanged",
                actor,
            )
            return Reloaded(version_id, changed)

    def rollback(self, version_id: int, actor: str) -> Reloaded:
        """Write version ``version_id``'s text back to the file (comments and all) and reload
        it; :class:`KeyError` if there is no such version, :class:`ConfigRefused` if it no
        longer loads (the file is left as it was)."""
        with self.engine.connect() as conn:
            version = get_version(conn, version_id)
        if version is None:
            raise KeyError(version_id)
        check_text(version.text, self.path)
        with self._lock:
            write_atomically(self.path, version.text)
        return self.reload(f"{actor} (rollback to version {version_id})", "rollback")

    def save(self, text: str, actor: str, base_version: int | None = None) -> Reloaded:
        """Write ``text`` (an edited configuration, comments and all) to the file and reload
        it. :class:`ConfigRefused` when it does not pass the check, :class:`VersionConflict`
        when ``base_version`` is not the version running here (someone saved meanwhile); in
        both cases the file stays as it was."""
        check_text(text, self.path)
        with self._lock:
            if base_version is not None and base_version != self.version_id:
                raise VersionConflict(base_version, self.version_id)
            write_atomically(self.path, text)
        return self.reload(actor, "save")

    def _credentials(self, config: LoadedConfig) -> None:
        if not any(stored_names(config, name) for name in config.model.channels):
            return
        box = SecretBox.from_environment(config.base_dir)
        for problem in apply_stored_credentials(config, self.engine, box):
            log.warning("%s", problem)

    # -- triggers ---------------------------------------------------------------------------

    def on_sighup(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: ask the poll thread to reload (a handler must not do the work)."""
        self._hup.set()

    def start(self) -> None:
        """Install the SIGHUP handler (main thread only) and start the poll thread."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self.on_sighup)
        self._thread = threading.Thread(target=self._loop, name="config-reload", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the poll thread."""
        self._stop.set()
        self._hup.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.engine.begin() as conn:
                forget_process(conn, self.host, self.pid)
        except Exception as exc:  # noqa: BLE001 - stopping: the row merely stays, dated
            log.warning("configuration: could not unregister %s:%s: %s", self.host, self.pid, exc)

    def _loop(self) -> None:
        failures = FailureLog(log, "configuration poll")
        while not self._stop.is_set():
            self._hup.wait(self.interval)
            if self._stop.is_set():
                return
            try:
                if self._hup.is_set():
                    self._hup.clear()
                    self._reload_logged("SIGHUP")
                else:
                    self._poll()
            except Exception as exc:  # noqa: BLE001 - the store may be away: logged, retried
                failures.failed(exc, masked_url(self.engine))
            else:
                failures.recovered()

    def _poll(self) -> None:
        with self.engine.begin() as conn:
            touch_process(conn, self.host, self.pid)
            newest = newest_version(conn)
        if newest is None or newest.id <= self._seen:
            return
        self._seen = newest.id
        if digest(_read(self.path)) != self.sha:
            self._reload_logged(f"{newest.actor} (hub version {newest.id})")

    def _reload_logged(self, actor: str) -> None:
        try:
            self.reload(actor)
        except ConfigRefused as exc:
            log.error("configuration %s: %s", self.path, exc)
