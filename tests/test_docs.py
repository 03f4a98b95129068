"""The README documents what a user can write: every transform, unit, entity, option, command.

Fails when something is added without its documentation (as datasette's test_docs does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from erpbridge.cli import app
from erpbridge.config.api import (
    ApiSettings,
    IdentityProvider,
    InboundConfig,
    OperationSettings,
    RateLimits,
    WebhookConfig,
)
from erpbridge.config.models import FlowConfig
from erpbridge.config.saml import SamlBackoffice, SamlGrant, SamlRole, SamlSettings
from erpbridge.mapping.spec import FieldMapping
from erpbridge.mapping.transforms import TRANSFORMS
from erpbridge.mapping.units import UNITS
from erpbridge.model.entities import BUILTIN_ENTITIES
from erpbridge.transports import available_transports, load_transport

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_is_documented(name: str) -> None:
    assert f"`{name}" in README or f"{{{name}:" in README


def test_units_are_documented() -> None:
    missing = [u for u in UNITS if f" {u}" not in README and f"`{u}" not in README]
    assert missing == []


@pytest.mark.parametrize("name", sorted(BUILTIN_ENTITIES))
def test_entity_is_documented(name: str) -> None:
    assert f"`{name}`" in README


@pytest.mark.parametrize("name", sorted(FlowConfig.model_fields))
def test_flow_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in README


@pytest.mark.parametrize("field", sorted(FieldMapping.model_fields))
def test_mapping_key_is_documented(field: str) -> None:
    alias = FieldMapping.model_fields[field].alias or field
    assert f"{alias}:" in README or f"`{alias}`" in README


@pytest.mark.parametrize("transport", sorted(available_transports()))
def test_transport_options_are_documented(transport: str) -> None:
    cls = load_transport(transport)
    optional = (getattr(cls, "target_options", None), getattr(cls, "operation_options", None))
    for model in (cls.channel_options, cls.stream_options, *optional):
        if model is None:
            continue
        for name, info in model.model_fields.items():
            key = info.alias or name
            assert f"`{key}`" in README, f"{transport} option {key!r} is not in the README"


def test_commands_are_documented() -> None:
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        assert f"`erpbridge {name}" in README, name
    for group in app.registered_groups:
        assert group.typer_instance is not None
        for command in group.typer_instance.registered_commands:
            sub = command.name or (command.callback.__name__ if command.callback else "")
            assert f"`erpbridge {group.name} {sub}" in README, f"{group.name} {sub}"


@pytest.mark.parametrize(
    "model",
    [
        ApiSettings,
        RateLimits,
        IdentityProvider,
        InboundConfig,
        WebhookConfig,
        OperationSettings,
        SamlSettings,
        SamlGrant,
        SamlBackoffice,
        SamlRole,
    ],
)
def test_api_settings_are_documented(model: type) -> None:
    for name in model.model_fields:
        assert f"`{name}`" in README, f"{model.__name__}.{name} is not in the README"
