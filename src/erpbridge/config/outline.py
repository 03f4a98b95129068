"""The configuration read up to its schema: the YAML file, ``${ENV}`` references, presets and
the pydantic models, without loading a transport or compiling a mapping.

:class:`Outline` is what a command that only reads the hub store needs (``erpbridge runs``):
the store's URL and the names of the flows. It starts in a fraction of the time a whole load
takes (no connector, mapping, workflow or document module is imported). A file whose schema is
broken is refused with the same ``file:line path: message`` problems; what only the later stages
find (an unknown transform, a channel option) is left to ``erpbridge check`` and to every
command that moves data, which load the file whole (:mod:`erpbridge.config.loader`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from erpbridge.config.envvars import expand_env
from erpbridge.config.models import ConfigFile
from erpbridge.config.presets import expand_presets
from erpbridge.config.problems import Problems
from erpbridge.config.secrets import check_plain_secrets
from erpbridge.config.validation import SetAside, validate_file
from erpbridge.errors import ConfigError, ConfigProblem
from erpbridge.systems import SystemType, system_types
from erpbridge.yamlfile import read_yaml

__all__ = ["Outline", "SchemaStage", "read_outline", "read_text", "resolve_sqlite_url"]


@dataclass
class Outline:
    """A configuration file checked against its schema: where it is, and its model."""

    path: Path
    model: ConfigFile

    @property
    def base_dir(self) -> Path:
        """The configuration file's folder; relative paths in it are relative to this."""
        return self.path.parent

    def database_url(self, env: Mapping[str, str] | None = None) -> str:
        """``ERPBRIDGE_DATABASE_URL``, else ``hub.database_url``, else SQLite beside the file."""
        env = os.environ if env is None else env
        url = env.get("ERPBRIDGE_DATABASE_URL") or self.model.hub.database_url
        if not url:
            return f"sqlite:///{self.base_dir / 'erpbridge.db'}"
        return resolve_sqlite_url(url, self.base_dir)

    def auto_upgrade(self, env: Mapping[str, str] | None = None) -> bool:
        """``ERPBRIDGE_AUTO_UPGRADE=1``, else ``hub.auto_upgrade``: upgrade an older schema."""
        env = os.environ if env is None else env
        flag = env.get("ERPBRIDGE_AUTO_UPGRADE", "").strip().lower()
        return flag in {"1", "true", "yes"} or self.model.hub.auto_upgrade

    def store_retry_s(self, env: Mapping[str, str] | None = None) -> float:
        """``ERPBRIDGE_STORE_RETRY_S``, else ``hub.store_retry_s``: the store outage budget."""
        return _seconds(env, "ERPBRIDGE_STORE_RETRY_S", self.model.hub.store_retry_s)

    def run_lease(self, env: Mapping[str, str] | None = None) -> timedelta:
        """``ERPBRIDGE_RUN_LEASE_S``, else ``hub.run_lease_s``: how long a run lives unbeaten."""
        return timedelta(seconds=_seconds(env, "ERPBRIDGE_RUN_LEASE_S", self.model.hub.run_lease_s))


@dataclass
class SchemaStage:
    """The first stages of a load: the model, the problems so far, what the later stages skip."""

    model: ConfigFile
    problems: Problems
    aside: SetAside
    systems: Mapping[str, SystemType]


def schema_stage(text: str, path: Path, env: Mapping[str, str] | None = None) -> SchemaStage:
    """YAML → environment references → presets → pydantic, every problem collected."""
    env = os.environ if env is None else env
    document = read_yaml(text, path.name)
    problems = Problems(path.name, document.lines)
    problems.found.extend(document.problems)
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(path.name, 1, "", "the file must be a mapping (channels:, flows:, …)")]
        )
    check_plain_secrets(data, problems)
    data = expand_env(data, (), problems, env)
    systems = system_types()
    aside = SetAside()
    expand_presets(data, systems, problems, aside)
    model = validate_file(data, problems, aside)
    return SchemaStage(model, problems, aside, systems)


def read_text(path: Path) -> str:
    """The file's text, or a :class:`ConfigError` naming it and why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"cannot read the file: {reason}")]
        ) from None


def read_outline(path: str | Path, env: Mapping[str, str] | None = None) -> Outline:
    """The configuration at ``path`` checked against its schema; raise :class:`ConfigError`."""
    path = Path(path)
    stage = schema_stage(read_text(path), path, env)
    if stage.problems.found:
        raise ConfigError(stage.problems.found)
    return Outline(path=path.resolve(), model=stage.model)


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
