"""What a command that only reads the hub store needs from the configuration: the ``hub:``
block and the names of the flows.

:func:`read_outline` reads the YAML file, expands ``${ENV}`` references in ``hub:`` and
validates that block alone (:class:`~erpbridge.config.hub.HubSettings`); it builds none of the
models of channels, flows, mappings, workflows or documents and imports no connector, which is
what lets ``erpbridge runs`` start in about half a second (issue 13). A broken ``hub:`` block or
YAML is refused with the same ``file:line path: message`` problems as a whole load; what only
the whole load finds (a flow's option, an unknown transform) is left to ``erpbridge check`` and
to every command that moves data (:mod:`erpbridge.config.loader`).

:class:`Outline` is also the base of :class:`~erpbridge.config.loaded.LoadedConfig`, so that
the code that opens the store takes either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from erpbridge.config.envvars import expand_env
from erpbridge.config.hub import HubSettings
from erpbridge.config.problems import Problems
from erpbridge.errors import ConfigError, ConfigProblem
from erpbridge.yamlfile import read_yaml

__all__ = ["Outline", "read_mapping", "read_outline", "read_text", "resolve_sqlite_url"]


@dataclass
class Outline:
    """A configuration file's place, its ``hub:`` block and the names of its flows."""

    path: Path
    hub: HubSettings
    flow_names: tuple[str, ...]

    @property
    def base_dir(self) -> Path:
        """The configuration file's folder; relative paths in it are relative to this."""
        return self.path.parent

    def database_url(self, env: Mapping[str, str] | None = None) -> str:
        """``ERPBRIDGE_DATABASE_URL``, else ``hub.database_url``, else SQLite beside the file."""
        env = os.environ if env is None else env
        url = env.get("ERPBRIDGE_DATABASE_URL") or self.hub.database_url
        if not url:
            return f"sqlite:///{self.base_dir / 'erpbridge.db'}"
        return resolve_sqlite_url(url, self.base_dir)

    def auto_upgrade(self, env: Mapping[str, str] | None = None) -> bool:
        """``ERPBRIDGE_AUTO_UPGRADE=1``, else ``hub.auto_upgrade``: upgrade an older schema."""
        env = os.environ if env is None else env
        flag = env.get("ERPBRIDGE_AUTO_UPGRADE", "").strip().lower()
        return flag in {"1", "true", "yes"} or self.hub.auto_upgrade

    def store_retry_s(self, env: Mapping[str, str] | None = None) -> float:
        """``ERPBRIDGE_STORE_RETRY_S``, else ``hub.store_retry_s``: the store outage budget."""
        return _seconds(env, "ERPBRIDGE_STORE_RETRY_S", self.hub.store_retry_s)

    def run_lease(self, env: Mapping[str, str] | None = None) -> timedelta:
        """``ERPBRIDGE_RUN_LEASE_S``, else ``hub.run_lease_s``: how long a run lives unbeaten."""
        return timedelta(seconds=_seconds(env, "ERPBRIDGE_RUN_LEASE_S", self.hub.run_lease_s))


def read_text(path: Path) -> str:
    """The file's text, or a :class:`ConfigError` naming it and why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"cannot read the file: {reason}")]
        ) from None


def read_mapping(text: str, path: Path) -> tuple[dict[str, Any], Problems]:
    """The YAML document in ``text`` (a mapping, else :class:`ConfigError`) and its problems
    so far, each placed by line."""
    document = read_yaml(text, path.name)
    problems = Problems(path.name, document.lines)
    problems.found.extend(document.problems)
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(path.name, 1, "", "the file must be a mapping (channels:, flows:, …)")]
        )
    return data, problems


def read_outline(path: str | Path, env: Mapping[str, str] | None = None) -> Outline:
    """The ``hub:`` block and flow names of the configuration at ``path``; raise
    :class:`ConfigError` with every problem of the YAML and of that block."""
    path = Path(path)
    data, problems = read_mapping(read_text(path), path)
    raw = expand_env(data.get("hub") or {}, ("hub",), problems, os.environ if env is None else env)
    hub = HubSettings()
    try:
        hub = HubSettings.model_validate(raw)
    except ValidationError as exc:
        problems.add_validation(("hub",), exc, HubSettings)
    if problems.found:
        raise ConfigError(problems.found)
    flows = data.get("flows")
    names = tuple(
        flow["name"]
        for flow in (flows if isinstance(flows, list) else [])
        if isinstance(flow, dict) and isinstance(flow.get("name"), str)
    )
    return Outline(path=path.resolve(), hub=hub, flow_names=names)


def _seconds(env: Mapping[str, str] | None, name: str, configured: float) -> float:
    value = (os.environ if env is None else env).get(name)
    if not value:
        return configured
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError([ConfigProblem(name, None, "", f"{value!r} is not a number")]) from None
    if seconds < 0:
        raise ConfigError([ConfigProblem(name, None, "", f"{value!r} is negative")])
    return seconds


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """Make a relative ``sqlite:///file.db`` URL relative to ``base_dir``."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(base_dir / url[len(prefix) :])
    return url
