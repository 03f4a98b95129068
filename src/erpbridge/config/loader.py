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
from pydantic import BaseModel, SecretStr, ValidationError

from erpbridge.config.api import OPERATION_KEYS, OperationSettings
from erpbridge.config.models import ConfigFile, FlowConfig, ScheduleTrigger
from erpbridge.errors import ConfigError, ConfigProblem, CredentialNotSet
from erpbridge.mapping.compiler import (
    CompiledMapping,
    CurrencyRates,
    MappingCompileError,
    compile_mapping,
    compile_outbound,
)
from erpbridge.model.cards import CardAction
from erpbridge.model.entities import BUILTIN_ENTITIES, EntityCatalog, EntitySpec
from erpbridge.systems import system_types
from erpbridge.transports import StreamOptions, TransportClass, available_transports, load_transport
from erpbridge.transports.base import OperationOptions, TargetOptions, Transport

__all__ = ["LoadedConfig", "load_config", "parse_config"]

Loc = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: A credential value meaning "set through the API, kept encrypted in the hub store".
STORED = "stored"
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
    #: Not errors: the configuration works, but probably not as its author wants.
    warnings: list[ConfigProblem] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        self.found.append(self._at(loc, message))

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(self._at(loc, message))

    def _at(self, loc: Loc, message: str) -> ConfigProblem:
        line = None
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        return ConfigProblem(self.file, line, format_loc(loc), message)

    def add_validation(self, prefix: Loc, exc: ValidationError) -> None:
        errors = []
        for order, err in enumerate(exc.errors()):
            raw: Loc = tuple(err["loc"])
            tags, clean = set(), list(prefix)
            for i, part in enumerate(raw):
                # A key written in the file is never a tag, even one named like a class ("MDS").
                if isinstance(part, str) and (*clean, part) not in self.lines and _TAG.match(part):
                    tags.add(i)
                else:
                    clean.append(part)
            errors.append(_Error(order, raw, frozenset(tags), tuple(clean), err))
        seen: set[tuple[Loc, str]] = set()
        for error in sorted(_union_choices(errors, 0), key=lambda e: e.order):
            message = _message(error.err)
            if (error.loc, message) not in seen:
                seen.add((error.loc, message))
                self.add(error.loc, message)

    def mapping_loc(self, at: Loc, path: str) -> Loc:
        """A mapping compile problem's path (``lines.sku.transforms[1]``) as a file location."""
        loc = at
        for part in path.split("."):
            name, _, index = part.partition("[")
            index = index.removesuffix("]")
            if (*loc, name) not in self.lines and (*loc, "fields", name) in self.lines:
                loc = (*loc, "fields")  # a nested field sits under its parent's 'fields:'
            loc = (*loc, name, int(index)) if index.isdigit() else (*loc, part)
        return loc


# pydantic names each alternative of a union in the error location: a class name, 'str',
# 'function-after[…]', 'literal[…]', 'list[…]', 'dict[…]'.
_TAG = re.compile(
    r"^(?:[A-Z]\w*|str|int|float|bool|function-.*|literal\[.*\]|list\[.*\]|dict\[.*\])$"
)
# Error types saying "the input is not of this alternative's type at all".
_MISMATCH = frozenset(
    {
        "string_type",
        "literal_error",
        "model_type",
        "model_attributes_type",
        "list_type",
        "dict_type",
        "int_type",
        "float_type",
        "bool_type",
        "decimal_type",
        "is_instance_of",
    }
)


@dataclass(frozen=True)
class _Error:
    order: int
    raw: Loc
    tags: frozenset[int]
    loc: Loc
    err: Any


def _union_choices(errors: list[_Error], start: int) -> list[_Error]:
    """Keep, for every union, only the errors of the alternative the input was meant as.

    That is the alternative with the fewest errors among those the input had the right shape
    for; when it fits none, one error at the union's place says what was expected.
    """
    kept: list[_Error] = []
    unions: dict[Loc, dict[str | int, list[_Error]]] = {}
    for error in errors:
        tag = min((t for t in error.tags if t >= start), default=None)
        if tag is None:
            kept.append(error)
        else:
            unions.setdefault(error.raw[:tag], {}).setdefault(error.raw[tag], []).append(error)
    for at, members in unions.items():
        meant = {
            member: [e for e in errs if len(e.raw) > len(at) + 1 or e.err["type"] not in _MISMATCH]
            for member, errs in members.items()
        }
        candidates = [member for member in members if meant[member]]
        if candidates:
            best = min(candidates, key=lambda member: len(meant[member]))
            kept.extend(_union_choices(members[best], len(at) + 1))
        else:
            kept.append(min((e for errs in members.values() for e in errs), key=lambda e: e.order))
    return kept


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] == "missing":
        return "required setting is missing"
    return str(err["msg"]).removeprefix("Value error, ")


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
    # Runs before validation, so any value may have any shape here.
    hub = data.get("hub") if isinstance(data, dict) else None
    if isinstance(hub, dict):
        _check_url(hub.get("database_url"), ("hub", "database_url"), problems)
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict):
        return
    for name, channel in channels.items():
        if not isinstance(channel, dict):
            continue
        credentials, options = channel.get("credentials"), channel.get("options")
        for key, value in credentials.items() if isinstance(credentials, dict) else ():
            if value == STORED:
                continue  # kept encrypted in the hub store, set through the API
            if not (isinstance(value, str) and _WHOLE_REF.match(value)):
                problems.add(
                    ("channels", name, "credentials", key),
                    "write secrets as ${ENV_VAR} references (or `stored`), never as literal values",
                )
        for key, value in options.items() if isinstance(options, dict) else ():
            _check_url(value, ("channels", name, "options", key), problems)


def _check_url(value: Any, loc: Loc, problems: _Problems) -> None:
    match = _URL_PASSWORD.match(value) if isinstance(value, str) else None
    if match and not _WHOLE_REF.match(match.group(1)):
        problems.add(loc, "the URL holds a literal password; write it as ${ENV_VAR}")


@dataclass
class LoadedConfig:
    """A validated configuration with everything compiled that can be compiled up front."""

    path: Path
    model: ConfigFile
    entities: EntityCatalog
    mappings: dict[str, CompiledMapping]
    streams: dict[str, StreamOptions]
    targets: dict[str, TargetOptions]
    transports: dict[str, TransportClass]
    channel_options: dict[str, BaseModel]
    #: channel → operation name → (common settings, the transport's own options).
    operations: dict[str, dict[str, tuple[OperationSettings, OperationOptions]]] = field(
        default_factory=dict
    )
    #: What ``erpbridge check`` warns about (``file:line path: message``); not errors.
    warnings: list[ConfigProblem] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """The configuration file's folder; relative paths in it are relative to this."""
        return self.path.parent

    def open_transport(self, channel: str) -> Transport:
        """A new transport for ``channel``; refused while a ``stored`` credential is unset."""
        options = self.channel_options[channel]
        credentials = getattr(options, "credentials", None)
        if isinstance(credentials, dict):
            unset = sorted(
                name
                for name, value in credentials.items()
                if isinstance(value, SecretStr) and value.get_secret_value() == STORED
            )
            if unset:
                raise CredentialNotSet(
                    f"channel {channel!r}: credential {', '.join(unset)} is `stored` but was "
                    f"never set (PUT /api/v1/channels/{channel}/credentials/{unset[0]})"
                )
        return self.transports[channel](channel, options, self.base_dir)

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
        except Exception as exc:  # noqa: BLE001 - a third-party plugin may fail in any way
            problems.add(
                ("channels", name, "transport"),
                f"transport {transport_name!r} failed to load: {type(exc).__name__}: {exc}",
            )
            continue
        # A system type's implied options only fit its own transport, not an override.
        implied = system.defaults if transport_name == system.transport else {}
        raw: dict[str, Any] = {**implied, **channel.options}
        if "credentials" in cls.channel_options.model_fields:
            # Secrets reach a transport only from the channel's credentials block (${ENV} refs).
            raw["credentials"] = channel.credentials
        try:
            options[name] = cls.channel_options.model_validate(raw)
        except ValidationError as exc:
            problems.add_validation(("channels", name, "options"), exc)
            continue
        transports[name] = cls
    return transports, options


_MERGED_PRESET_BLOCKS = ("source", "target")


def _expand_presets(data: dict[str, Any], problems: _Problems) -> None:
    """Replace each flow's ``preset:`` by the system type's preset, the flow's own keys winning.

    ``name`` defaults to the preset's name; a key given in the flow (``mapping``, ``trigger``…)
    replaces the preset's key as a whole, except ``source`` and ``target``, which merge key by key.
    """
    flows, channels = data.get("flows"), data.get("channels")
    if not isinstance(flows, list) or not isinstance(channels, dict):
        return
    systems = system_types()
    for index, flow in enumerate(flows):
        if not isinstance(flow, dict) or "preset" not in flow:
            continue
        loc = ("flows", index, "preset")
        name = flow["preset"]
        channel = channels.get(str(flow.get("channel")))
        system = systems.get(str(channel.get("system"))) if isinstance(channel, dict) else None
        if system is None:
            problems.add(loc, "a preset needs the flow's channel and its system type")
            continue
        presets = system.presets()
        if name not in presets:
            known = ", ".join(sorted(presets)) or "none"
            problems.add(
                loc, f"system type {system.name!r} has no preset {name!r} (known: {known})"
            )
            continue
        own = {k: v for k, v in flow.items() if k != "preset"}
        merged = {"name": name, **presets[name], **own}
        for block in _MERGED_PRESET_BLOCKS:
            # Transport options merge key by key: changing one partner or path keeps the rest.
            base, given = presets[name].get(block), own.get(block)
            if isinstance(base, dict) and isinstance(given, dict):
                merged[block] = {**base, **given}
        flows[index] = merged


def _validate_operations(
    model: ConfigFile, transports: dict[str, TransportClass], problems: _Problems
) -> dict[str, dict[str, tuple[OperationSettings, OperationOptions]]]:
    found: dict[str, dict[str, tuple[OperationSettings, OperationOptions]]] = {}
    for channel, config in model.channels.items():
        if not config.operations or channel not in transports:
            continue
        options_model = getattr(transports[channel], "operation_options", None)
        if options_model is None:
            problems.add(
                ("channels", channel, "operations"),
                "this channel's transport serves no real-time operations",
            )
            continue
        for name, raw in config.operations.items():
            loc = ("channels", channel, "operations", name)
            if not re.match(r"^[A-Za-z][A-Za-z0-9_.-]*$", name):
                problems.add(loc, f"{name!r} is not a valid name (letters, digits, _ . -)")
                continue
            common = {k: v for k, v in raw.items() if k in OPERATION_KEYS}
            own = {k: v for k, v in raw.items() if k not in OPERATION_KEYS}
            try:
                settings = OperationSettings.model_validate(common)
                options = options_model.model_validate(own)
            except ValidationError as exc:
                problems.add_validation(loc, exc)
                continue
            found.setdefault(channel, {})[name] = (settings, options)
    return found


def _validate_inbound(model: ConfigFile, problems: _Problems) -> None:
    for name, channel in model.channels.items():
        hook = channel.inbound.webhook if channel.inbound else None
        if hook is None:
            continue
        loc = ("channels", name, "inbound", "webhook")
        flow = next((f for f in model.flows if f.name == hook.flow), None)
        if flow is None or flow.direction != "in" or flow.channel != name:
            problems.add((*loc, "flow"), f"{hook.flow!r} is not an IN flow of channel {name!r}")
        if hook.secret not in channel.credentials:
            problems.add(
                (*loc, "secret"),
                f"the channel has no credential {hook.secret!r} (add it under credentials: "
                "as ${ENV_VAR})",
            )


def _validate_identity_providers(model: ConfigFile, problems: _Problems) -> None:
    seen: set[str] = set()
    for i, provider in enumerate(model.hub.api.identity_providers):
        loc: Loc = ("hub", "api", "identity_providers", i)
        if provider.issuer in seen:
            problems.add((*loc, "issuer"), f"issuer {provider.issuer!r} is listed twice")
        seen.add(provider.issuer)
        grant = provider.unmapped
        for channel in grant.channels or [] if grant else []:
            if channel not in model.channels:
                problems.add((*loc, "unmapped", "channels"), f"no channel named {channel!r}")


def _validate_saml(model: ConfigFile, problems: _Problems) -> None:
    saml = model.hub.api.saml
    for index, rule in enumerate(saml.grants if saml else []):
        unknown = sorted(set(rule.channels or ()) - set(model.channels))
        if unknown:
            problems.add(
                ("hub", "api", "saml", "grants", index, "channels"),
                f"no channel named {', '.join(unknown)}",
            )


def _check_card_numbers(
    setting: Mapping[str, CardAction], entity: EntitySpec, at: Loc, problems: _Problems
) -> None:
    """An IN flow's ``card_numbers`` names fields of its entity, and masks no guarded one."""
    for path, action in setting.items():
        name = path.split(".")[0]
        if path == "*":
            continue
        if name not in entity.fields:
            problems.add((*at, "card_numbers", path), f"{name!r} is not a field of the entity")
        elif action == "mask" and name in entity.card_number_guarded:
            problems.add(
                (*at, "card_numbers", path),
                "a business key or guarded (no_card_numbers) field always rejects a card number",
            )


def _validate_flows(
    model: ConfigFile,
    catalog: EntityCatalog,
    transports: Mapping[str, TransportClass],
    problems: _Problems,
    channel_options: Mapping[str, Any],
) -> tuple[dict[str, CompiledMapping], dict[str, StreamOptions], dict[str, TargetOptions]]:
    mappings: dict[str, CompiledMapping] = {}
    streams: dict[str, StreamOptions] = {}
    targets: dict[str, TargetOptions] = {}
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
            if flow.direction == "in" and isinstance(flow.card_numbers, dict):
                _check_card_numbers(flow.card_numbers, entity, at, problems)
            try:
                if flow.direction == "out":
                    mappings[flow.name] = compile_outbound(flow.mapping, rates, flow.card_numbers)
                else:
                    mappings[flow.name] = compile_mapping(
                        flow.mapping, entity, rates, flow.card_numbers
                    )
            except MappingCompileError as exc:
                for path, message in exc.problems:
                    problems.add(problems.mapping_loc((*at, "mapping"), path), message)
        cls = transports.get(flow.channel)
        if cls is None:
            continue
        if flow.direction == "out":
            _validate_target(flow, at, cls, targets, problems)
            # A transport may refuse a target for its channel's options (a platform channel
            # without webhook_url takes no OUT flows): refused here, not at delivery time.
            check = getattr(cls, "check_target", None)
            if check is not None and flow.name in targets and flow.channel in channel_options:
                problem = check(flow.channel, channel_options[flow.channel], targets[flow.name])
                if problem:
                    problems.add((*at, "channel"), problem)
            continue
        if flow.target:
            problems.add((*at, "target"), "an IN flow reads from a 'source', it has no 'target'")
        source = dict(flow.source)
        if flow.cursor is not None:
            source["cursor"] = flow.cursor.model_dump()
            cursor = flow.cursor
            _warn_no_window(cursor.safety_window, cursor.column, (*at, "cursor"), problems)
        elif isinstance(source.get("cursor"), dict):
            window, column = source["cursor"].get("safety_window"), source["cursor"].get("column")
            _warn_no_window(window, column, (*at, "source", "cursor"), problems)
        try:
            streams[flow.name] = cls.stream_options.model_validate(source)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                where: Loc = (*at, *loc) if loc[:1] == ("cursor",) else (*at, "source", *loc)
                problems.add(where, _message(err))
    return mappings, streams, targets


def _warn_no_window(window: Any, column: Any, at: Loc, problems: _Problems) -> None:
    """A cursor set to re-read nothing loses late commits when its column is a date/time."""
    if window == 0:
        problems.warn(
            (*at, "safety_window"),
            f"0 re-reads nothing: if {column} is a date/time column, a row committed after the "
            f"hub read rows with a later {column} is never read (late commits are lost); leave "
            "safety_window out (300 s for date/time columns) or size it to the longest "
            "transaction of the source",
        )


def _validate_target(
    flow: FlowConfig,
    at: Loc,
    cls: TransportClass,
    targets: dict[str, TargetOptions],
    problems: _Problems,
) -> None:
    for name in ("source", "cursor", "conflict"):
        if getattr(flow, name):
            problems.add((*at, name), f"an OUT flow writes to a 'target', it has no {name!r}")
    options = getattr(cls, "target_options", None)
    if options is None or not hasattr(cls, "write"):
        problems.add((*at, "channel"), f"channel {flow.channel!r} cannot be written to")
        return
    try:
        targets[flow.name] = options.model_validate(flow.target)
    except ValidationError as exc:
        for err in exc.errors():
            problems.add((*at, "target", *tuple(err["loc"])), _message(err))


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
    _expand_presets(data, problems)
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
    mappings, streams, targets = _validate_flows(model, catalog, transports, problems, options)
    _validate_inbound(model, problems)
    _validate_identity_providers(model, problems)
    _validate_saml(model, problems)
    operations = _validate_operations(model, transports, problems)
    if problems.found:
        raise ConfigError(problems.found)
    return LoadedConfig(
        path=path.resolve(),
        model=model,
        entities=catalog,
        mappings=mappings,
        streams=streams,
        targets=targets,
        transports=transports,
        channel_options=options,
        operations=operations,
        warnings=problems.warnings,
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
