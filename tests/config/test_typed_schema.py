"""``erpbridge schema`` types each transport's options, source and target, for editors."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from erpbridge.config.schema import config_schema
from erpbridge.yamlfile import read_yaml

SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
EXAMPLES = Path(__file__).parents[2] / "examples"


def errors(document: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in VALIDATOR.iter_errors(document)
    )


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    "path",
    [*sorted(EXAMPLES.glob("*/erpbridge.yaml"))],
    ids=lambda p: p.parent.name,
)
def test_the_examples_conform(path: Path) -> None:
    document = read_yaml(path.read_text(encoding="utf-8"), path.name).data
    assert errors(document) == []


def test_the_init_example_conforms() -> None:
    text = files("erpbridge.config").joinpath("example.yaml").read_text(encoding="utf-8")
    assert errors(read_yaml(text, "example.yaml").data) == []


def test_channel_options_follow_the_system_type_or_the_transport() -> None:
    folder = {"channels": {"shop": {"system": "folder", "options": {"path": "x", "colour": 1}}}}
    assert errors(folder) == [
        "channels/shop/options: Additional properties are not allowed ('colour' was unexpected)"
    ]
    assert errors({"channels": {"shop": {"system": "folder", "options": {}}}}) == [
        "channels/shop/options: 'path' is a required property"
    ]
    overridden = {"channels": {"s": {"system": "folder", "transport": "sftp", "options": {}}}}
    assert any("'host' is a required property" in e for e in errors(overridden))


def test_implied_options_of_a_system_type_are_not_required() -> None:
    odoo = SCHEMA["$defs"]["RpcChannelOptions_odoo"]
    assert "dialect" not in odoo.get("required", [])
    assert "dialect" in SCHEMA["$defs"]["RpcChannelOptions"]["properties"]


def test_secrets_are_not_offered_under_options() -> None:
    for name, definition in SCHEMA["$defs"].items():
        if name.endswith("ChannelOptions"):
            assert "credentials" not in definition.get("properties", {}), name


def test_flow_source_and_target_offer_the_transports_keys() -> None:
    flow = SCHEMA["$defs"]["FlowConfig"]["properties"]
    sources = {ref["$ref"].split("/")[-1] for ref in flow["source"]["anyOf"]}
    targets = {ref["$ref"].split("/")[-1] for ref in flow["target"]["anyOf"]}
    assert {"FolderStreamOptions", "RestStreamOptions", "SqlStreamOptions"} <= sources
    assert {"FolderTargetOptions", "RestTargetOptions"} <= targets
    bad = {
        "flows": [
            {
                "name": "f",
                "channel": "shop",
                "entity": "customer",
                "direction": "in",
                "source": {"sheet": 1},
            }
        ]
    }
    assert errors(bad) != []


def test_an_environment_reference_fits_any_option() -> None:
    def sftp(port: object) -> dict[str, Any]:
        options = {"host": "h", "username": "u", "path": "/in", "port": port}
        return {"channels": {"wms": {"system": "sftp", "options": options}}}

    assert errors(sftp("${WMS_PORT:-22}")) == []
    assert errors(sftp(22)) == []
    assert errors(sftp("twenty-two")) != []


def test_a_preset_flow_and_a_field_shorthand_conform() -> None:
    document = {
        "entities": {"vehicle": {"key": ["vin"], "fields": {"vin": "string"}}},
        "flows": [{"preset": "customers-from-tryton", "channel": "erp", "trigger": "manual"}],
    }
    assert errors(document) == []
