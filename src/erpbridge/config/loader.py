"""Load a configuration file: YAML → environment references → pydantic → cross-checks.

Every problem of every stage is collected and reported at once, each with file, line and path,
e.g. ``erpbridge.yaml:42 flows[3].mapping.price: unknown transform 'cents'``. The stages live in
their own modules: :mod:`~erpbridge.yamlfile` (YAML 1.2 with lines),
:mod:`~erpbridge.config.envvars`, :mod:`~erpbridge.config.secrets`,
:mod:`~erpbridge.config.presets`, :mod:`~erpbridge.config.validation` (the schema),
:mod:`~erpbridge.config.channels` (registry and transports), :mod:`~erpbridge.config.flows`
(mappings); :mod:`~erpbridge.config.loaded` is the result and runtime factory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from erpbridge.config.alerts import check_alerts
from erpbridge.config.channels import (
    check_channels,
    check_identity_providers,
    check_inbound,
    check_operations,
    check_saml,
)
from erpbridge.config.documents import check_documents
from erpbridge.config.envvars import expand_env
from erpbridge.config.flows import check_flows
from erpbridge.config.loaded import LoadedConfig
from erpbridge.config.models import ConfigFile
from erpbridge.config.outline import read_mapping, read_text, resolve_sqlite_url
from erpbridge.config.owners import check_owners
from erpbridge.config.presets import expand_presets
from erpbridge.config.problems import Problems, format_loc
from erpbridge.config.secrets import STORED, check_plain_secrets
from erpbridge.config.validation import SetAside, validate_file
from erpbridge.config.workflows import check_workflows
from erpbridge.errors import ConfigError
from erpbridge.model.entities import BUILTIN_ENTITIES, EntityCatalog
from erpbridge.systems import SystemType, system_types

__all__ = [
    "STORED",
    "LoadedConfig",
    "format_loc",
    "iter_problems",
    "load_config",
    "parse_config",
    "resolve_sqlite_url",
]


def parse_config(text: str, path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Parse and validate configuration ``text`` read from ``path``; raise :class:`ConfigError`."""
    stage = schema_stage(text, path, env)
    model, problems, aside, systems = stage.model, stage.problems, stage.aside, stage.systems
    for name in model.entities:
        if name in BUILTIN_ENTITIES:
            problems.add(("entities", name), f"{name!r} is a built-in entity; choose another name")
    catalog = EntityCatalog(model.entities)
    channels = check_channels(model, systems, problems, aside)
    flows = check_flows(model, catalog, channels.classes, channels.options, problems, aside)
    check_owners(model, catalog, problems)
    workflows = check_workflows(model, catalog, problems, aside)
    check_inbound(model, problems, aside)
    check_identity_providers(model, problems, aside)
    check_saml(model, problems, aside)
    operations = check_operations(model, channels.classes, problems)
    documents = check_documents(model, catalog, path.resolve().parent, problems, aside)
    if "alerts" not in aside.sections:
        flow_names = {f.name for f in model.flows} | aside.flows
        channel_names = set(model.channels) | aside.channels
        check_alerts(model.alerts, flow_names, channel_names, problems)
    if problems.found:
        raise ConfigError(problems.found)
    return LoadedConfig(
        path=path.resolve(),
        hub=model.hub,
        flow_names=tuple(f.name for f in model.flows),
        model=model,
        entities=catalog,
        mappings=flows.mappings,
        streams=flows.streams,
        targets=flows.targets,
        reconcile=flows.reconcile,
        transports=channels.transports(),
        channel_options=channels.options,
        operations=operations,
        documents=documents,
        warnings=problems.warnings,
        workflows=workflows.workflows,
        triggers=workflows.triggers,
    )


@dataclass
class SchemaStage:
    """The first stages of a load: the model, the problems so far, what the later stages skip."""

    model: ConfigFile
    problems: Problems
    aside: SetAside
    systems: Mapping[str, SystemType]


def schema_stage(text: str, path: Path, env: Mapping[str, str] | None = None) -> SchemaStage:
    """YAML → environment references → presets → pydantic, every problem collected."""
    data, problems = read_mapping(text, path)
    check_plain_secrets(data, problems)
    data = expand_env(data, (), problems, os.environ if env is None else env)
    systems = system_types()
    aside = SetAside()
    expand_presets(data, systems, problems, aside)
    model = validate_file(data, problems, aside)
    return SchemaStage(model, problems, aside, systems)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate the configuration file at ``path``; raise :class:`ConfigError`."""
    path = Path(path)
    return parse_config(read_text(path), path, env)


def iter_problems(exc: ConfigError) -> Iterator[str]:
    """The problems of ``exc`` as printable lines."""
    for problem in exc.problems:
        yield str(problem)
