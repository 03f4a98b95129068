"""The configuration's JSON Schema (``erpbridge schema``) is valid and describes real files."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

import pytest
import yaml

from erpbridge.config import ConfigFile

SCHEMA = ConfigFile.model_json_schema()
TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
KEYWORDS = {
    "$defs", "$ref", "additionalProperties", "anyOf", "const", "default", "description",
    "enum", "exclusiveMaximum", "exclusiveMinimum", "items", "maxItems", "maxLength", "maximum",
    "minItems", "minLength", "minimum", "pattern", "prefixItems", "properties", "required",
    "title", "type", "uniqueItems", "examples", "format", "writeOnly", "readOnly",
}  # fmt: skip


def walk(node: Any, where: str = "#") -> None:
    """Check the schema's structure: known keywords, resolvable refs, valid patterns."""
    assert isinstance(node, dict), where
    assert set(node) <= KEYWORDS, f"{where}: {set(node) - KEYWORDS}"
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        assert name in SCHEMA["$defs"], f"{where}: dangling {node['$ref']}"
    if "type" in node:
        assert node["type"] in TYPES, where
    if "pattern" in node:
        re.compile(node["pattern"])
    for key in ("properties", "$defs"):
        for name, child in node.get(key, {}).items():
            walk(child, f"{where}/{key}/{name}")
    if "required" in node:
        assert set(node["required"]) <= set(node["properties"]), where
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            walk(node[key], f"{where}/{key}")
    for i, child in enumerate(node.get("anyOf", [])):
        walk(child, f"{where}/anyOf/{i}")
    for i, child in enumerate(node.get("prefixItems", [])):
        walk(child, f"{where}/prefixItems/{i}")


def conforms(instance: Any, node: dict[str, Any]) -> bool:
    """A small validator for the keywords pydantic emits here."""
    if "$ref" in node:
        return conforms(instance, SCHEMA["$defs"][node["$ref"].removeprefix("#/$defs/")])
    if "anyOf" in node:
        return any(conforms(instance, option) for option in node["anyOf"])
    if "const" in node and instance != node["const"]:
        return False
    if "enum" in node and instance not in node["enum"]:
        return False
    kind = node.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](instance):
        return False
    if isinstance(instance, str) and "pattern" in node and not re.search(node["pattern"], instance):
        return False
    if isinstance(instance, list):
        if "prefixItems" in node:
            return all(conforms(v, n) for v, n in zip(instance, node["prefixItems"], strict=False))
        return all(conforms(v, node.get("items", {})) for v in instance)
    if isinstance(instance, dict):
        properties = node.get("properties", {})
        if not set(node.get("required", [])) <= set(instance):
            return False
        for key, value in instance.items():
            if key in properties:
                ok = conforms(value, properties[key])
            elif node.get("additionalProperties") is False:
                ok = False
            elif isinstance(node.get("additionalProperties"), dict):
                ok = conforms(value, node["additionalProperties"])
            else:
                ok = True
            if not ok:
                return False
    return True


def test_the_schema_is_well_formed_json_schema() -> None:
    walk(SCHEMA)
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA
    assert SCHEMA["type"] == "object"
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["properties"]) == {
        "version",
        "hub",
        "currency_rates",
        "entities",
        "owners",
        "channels",
        "flows",
        "workflows",
        "documents",
        "alerts",
    }


def test_the_schema_documents_the_settings() -> None:
    flow = SCHEMA["$defs"]["FlowConfig"]
    assert set(flow["required"]) == {"name", "channel", "entity", "direction"}
    assert flow["additionalProperties"] is False
    assert "description" in flow["properties"]["mapping"]
    field_mapping = SCHEMA["$defs"]["FieldMapping"]["properties"]
    assert {"from", "template", "value", "each", "fields", "transforms", "map", "unit"} <= set(
        field_mapping
    )
    assert "from_" not in field_mapping
    credentials = SCHEMA["$defs"]["ChannelConfig"]["properties"]["credentials"]
    assert (
        credentials["additionalProperties"].get("writeOnly")
        or "ENV_VAR" in credentials["description"]
    )


def test_the_example_configuration_fits_the_schema() -> None:
    example = files("erpbridge.config").joinpath("example.yaml").read_text(encoding="utf-8")
    assert conforms(yaml.safe_load(example), SCHEMA)


@pytest.mark.parametrize(
    "document",
    [
        {"chanels": {}},
        {"flows": [{"name": "f", "channel": "c", "entity": "customer"}]},
        {"flows": [{"name": "f", "channel": "c", "entity": "e", "direction": "sideways"}]},
        {"version": 2},
        {"channels": {"c": {"system": "folder", "secret": "x"}}},
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(document: dict[str, Any]) -> None:
    assert not conforms(document, SCHEMA)
