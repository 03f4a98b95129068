"""Load a configuration file: YAML → environment references → pydantic → cross-checks.

Every problem is collected and reported at once, each with file, line and path, e.g.
``erpbridge.yaml:42 flows[3].mapping.price: unknown transform 'cents'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ValidationError

from erpbridge.config.models import ConfigFile, FlowConfig, ScheduleTrigger
from erpbridge.errors import ConfigError, ConfigProblem
from erpbridge.mapping.compiler import (
    CompiledMapping,
    CurrencyRates,
    MappingCompileError,
    compile_mapping,
)
from erpbridge.model.entities import BUILTIN_ENTITIES, EntityCatalog
from erpbridge.systems import system_types
from erpbridge.transports import StreamOptions, TransportClass, available_transports, load_transport

__all__ = ["LoadedConfig", "load_config", "parse_config"]

Loc = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_WHOLE_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$")
_URL_PASSWORD = re.compile(r"^[a-z0-9+]+://[^:/@\s]+:([^@\s]+)@", re.IGNORECASE)


def format_loc(loc: Loc) -> str:
    """``('flows', 3, 'mapping', 'price')`` → ``flows[3].mapping.price``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_index(node: yaml.Node, loc: Loc, index: dict[Loc, int]) -> None:
    index[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            index[(*loc, name)] = key.start_mark.line + 1
            _line_index(value, (*loc, name), index)
            index[(*loc, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*loc, i), index)


@dataclass
class _Problems:
    file: str
    lines: dict[Loc, int]
    found: list[ConfigProblem] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        line = None
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        self.found.append(ConfigProblem(self.file, line, format_loc(loc), message))

    def add_validation(self, prefix: Loc, exc: ValidationError) -> None:
        seen: set[tuple[Loc, str]] = set()
        errors = exc.errors()
        for err in errors:
            loc, message = _clean_error(err, len(errors))
            if loc is None or (loc, message) in seen:
                continue
            seen.add((loc, message))
            self.add((*prefix, *loc), message)


def _clean_error(err: Any, count: int) -> tuple[Loc | None, str]:
    """Drop pydantic's union-member tags from a location and the noise of failed alternatives."""
    raw: Loc = tuple(err["loc"])
    loc: Loc = tuple(
        p
        for p in raw
        if isinstance(p, int)
        or not (
            p[:1].isupper()
            or p in ("str", "list[str]", "literal['manual','initial','immediate']")
            or p.startswith(("function-", "literal["))
        )
    )
    tagged = loc != raw
    if (
        tagged
        and count > 1
        and err["type"] in ("string_type", "literal_error", "model_type", "list_type", "dict_type")
    ):
        return None, ""  # an alternative of a union that the input was clearly not meant as
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown setting"
    elif err["type"] == "missing":
        message = "required setting is missing"
    return loc, message


def _expand_env(value: Any, loc: Loc, problems: _Problems, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.add(loc, f"environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(replace, value.replace("$${", "\0")).replace("\0", "${")
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), problems, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), problems, env) for i, v in enumerate(value)]
    return value


def _check_plain_secrets(data: Any, problems: _Problems) -> None:
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict):
        return
    for name, channel in channels.items():
        if not isinstance(channel, dict):
            continue
        for key, value in (channel.get("credentials") or {}).items():
            if not (isinstance(value, str) and _WHOLE_REF.match(value)):
                problems.add(
                    ("channels", name, "credentials", key),
                    "write secrets as ${ENV_VAR} references, never as literal values",
                )
        for key, value in (channel.get("options") or {}).items():
            match = _URL_PASSWORD.match(value) if isinstance(value, str) else None
            if match and not _WHOLE_REF.match(match.group(1)):
                problems.add(
                    ("channels", name, "options", key),
                    "the URL holds a literal password; write it as ${ENV_VAR}",
                )


@dataclass
class LoadedConfig:
    """A validated configuration with everything compiled that can be compiled up front."""

    path: Path
    model: ConfigFile
    entities: EntityCatalog
    mappings: dict[str, CompiledMapping]
    streams: dict[str, StreamOptions]
    transports: dict[str, TransportClass]
    channel_options: dict[str, BaseModel]

    @property
    def base_dir(self) -> Path:
        """The configuration file's folder; relative paths in it are relative to this."""
        return self.path.parent

    def flow(self, name: str) -> FlowConfig:
        """The flow called ``name``; ``KeyError`` lists the known ones."""
        for flow in self.model.flows:
            if flow.name == name:
                return flow
        known = ", ".join(f.name for f in self.model.flows) or "none"
        raise KeyError(f"no flow named {name!r} (flows: {known})")

    def database_url(self, env: Mapping[str, str] | None = None) -> str:
        """``ERPBRIDGE_DATABASE_URL``, else ``hub.database_url``, else SQLite beside the file."""
        env = os.environ if env is None else env
        url = env.get("ERPBRIDGE_DATABASE_URL") or self.model.hub.database_url
        if not url:
            return f"sqlite:///{self.base_dir / 'erpbridge.db'}"
        return resolve_sqlite_url(url, self.base_dir)


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """Make a relative ``sqlite:///file.db`` URL relative to ``base_dir``."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(base_dir / url[len(prefix) :])
    return url


def _validate_channels(
    model: ConfigFile, problems: _Problems
) -> tuple[dict[str, TransportClass], dict[str, BaseModel]]:
    transports: dict[str, TransportClass] = {}
    options: dict[str, BaseModel] = {}
    systems = system_types()
    for name, channel in model.channels.items():
        system = systems.get(channel.system)
        if system is None:
            problems.add(
                ("channels", name, "system"),
                f"unknown system type {channel.system!r} (known: {', '.join(sorted(systems))})",
            )
            continue
        transport_name = channel.transport or system.transport
        try:
            cls = load_transport(transport_name)
        except KeyError:
            known = ", ".join(sorted(available_transports()))
            problems.add(
                ("channels", name, "transport"),
                f"unknown transport {transport_name!r} (known: {known})",
            )
            continue
        try:
            options[name] = cls.channel_options.model_validate(channel.options)
        except ValidationError as exc:
            problems.add_validation(("channels", name, "options"), exc)
            continue
        transports[name] = cls
    return transports, options


def _validate_flows(
    model: ConfigFile,
    catalog: EntityCatalog,
    transports: Mapping[str, TransportClass],
    problems: _Problems,
) -> tuple[dict[str, CompiledMapping], dict[str, StreamOptions]]:
    mappings: dict[str, CompiledMapping] = {}
    streams: dict[str, StreamOptions] = {}
    rates = CurrencyRates(model.currency_rates.base, model.currency_rates.rates)
    names: set[str] = set()
    for i, flow in enumerate(model.flows):
        at: Loc = ("flows", i)
        if flow.name in names:
            problems.add((*at, "name"), f"duplicate flow name {flow.name!r}")
        names.add(flow.name)
        if flow.channel not in model.channels:
            known = ", ".join(model.channels) or "none"
            problems.add((*at, "channel"), f"unknown channel {flow.channel!r} (channels: {known})")
        if isinstance(flow.trigger, ScheduleTrigger) and not croniter.is_valid(
            flow.trigger.schedule
        ):
            problems.add(
                (*at, "trigger", "schedule"),
                f"invalid cron expression {flow.trigger.schedule!r}",
            )
        entity = catalog.get(flow.entity)
        if entity is None:
            problems.add(
                (*at, "entity"), f"unknown entity {flow.entity!r} (entities: {', '.join(catalog)})"
            )
        else:
            try:
                mappings[flow.name] = compile_mapping(flow.mapping, entity, rates)
            except MappingCompileError as exc:
                for path, message in exc.problems:
                    problems.add((*at, "mapping", *path.split(".")), message)
        cls = transports.get(flow.channel)
        if cls is not None:
            source = dict(flow.source)
            if flow.cursor is not None:
                source["cursor"] = flow.cursor.model_dump()
            try:
                streams[flow.name] = cls.stream_options.model_validate(source)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = tuple(err["loc"])
                    where: Loc = (*at, *loc) if loc[:1] == ("cursor",) else (*at, "source", *loc)
                    problems.add(where, _clean_error(err, 1)[1])
    return mappings, streams


def parse_config(text: str, path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Parse and validate configuration ``text`` read from ``path``; raise :class:`ConfigError`."""
    env = os.environ if env is None else env
    problems = _Problems(path.name, {})
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem(path.name, line, "", f"malformed YAML: {reason}")]
        ) from None
    if root is not None:
        _line_index(root, (), problems.lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(path.name, 1, "", "the file must be a mapping (channels:, flows:, …)")]
        )
    _check_plain_secrets(data, problems)
    data = _expand_env(data, (), problems, env)
    try:
        model = ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems.add_validation((), exc)
        raise ConfigError(problems.found) from None
    for name in model.entities:
        if name in BUILTIN_ENTITIES:
            problems.add(("entities", name), f"{name!r} is a built-in entity; choose another name")
    catalog = EntityCatalog(model.entities)
    transports, options = _validate_channels(model, problems)
    mappings, streams = _validate_flows(model, catalog, transports, problems)
    if problems.found:
        raise ConfigError(problems.found)
    return LoadedConfig(
        path=path.resolve(),
        model=model,
        entities=catalog,
        mappings=mappings,
        streams=streams,
        transports=transports,
        channel_options=options,
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate the configuration file at ``path``; raise :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"cannot read the file: {reason}")]
        ) from None
    return parse_config(text, path, env)


def iter_problems(exc: ConfigError) -> Iterator[str]:
    """The problems of ``exc`` as printable lines."""
    for problem in exc.problems:
        yield str(problem)
