"""The configuration's JSON Schema for editors (``erpbridge schema``), typed per transport.

:class:`~erpbridge.config.models.ConfigFile` types ``options``, ``source`` and ``target`` as
free mappings, because which keys they take depends on the channel's transport. The schema
printed here fills that in from each transport's own pydantic models: a channel's ``options``
follow its ``transport`` (or its system type's), and a flow's ``source``/``target`` offer the
keys of every transport that has them (a flow names its channel, which JSON Schema cannot
follow), so an editor completes and checks them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from erpbridge.config.models import ConfigFile
from erpbridge.systems import system_types
from erpbridge.transports import available_transports, load_transport

__all__ = ["config_schema"]

Schema = dict[str, Any]


def config_schema() -> Schema:
    """The JSON Schema of a configuration file, with the transports' options typed."""
    transports = {}
    for name in sorted(available_transports()):
        try:
            transports[name] = load_transport(name)
        except Exception:  # noqa: BLE001, S112 - a broken plugin only loses its completion
            continue
    models: list[type[BaseModel]] = [ConfigFile]
    for cls in transports.values():
        for attribute in ("channel_options", "stream_options", "target_options"):
            model = getattr(cls, attribute, None)
            if isinstance(model, type) and issubclass(model, BaseModel) and model not in models:
                models.append(model)
    refs, shared = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/$defs/{model}"
    )
    defs: Schema = shared["$defs"]
    schema = dict(defs.pop(refs[(ConfigFile, "validation")]["$ref"].split("/")[-1]))
    schema["$defs"] = defs

    def ref(cls: Any, attribute: str) -> Schema | None:
        model = getattr(cls, attribute, None)
        return refs.get((model, "validation")) if model is not None else None

    for model in models[1:]:
        # Secrets reach a transport from the channel's `credentials:`, never from `options:`.
        definition = defs[refs[(model, "validation")]["$ref"].split("/")[-1]]
        definition.get("properties", {}).pop("credentials", None)
        if "required" in definition:
            definition["required"] = [r for r in definition["required"] if r != "credentials"]
    for model in models[1:]:
        _allow_env_refs(defs[refs[(model, "validation")]["$ref"].split("/")[-1]])
    _type_channel_options(defs, transports, ref)
    _type_flow_blocks(defs, transports, ref)
    _what_the_loader_also_reads(defs)
    schema["properties"]["flows"]["items"] = {
        "anyOf": [{"$ref": "#/$defs/FlowConfig"}, {"$ref": "#/$defs/FlowConfigFromPreset"}]
    }
    return schema


#: Any value may be a `${VAR}` reference, expanded before validation (a port, a URL).
_ENV_REF: Schema = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"}


def _allow_env_refs(definition: Schema) -> None:
    for name, prop in definition.get("properties", {}).items():
        if prop.get("type") != "string":
            outer = {k: prop.pop(k) for k in ("description", "title", "default") if k in prop}
            definition["properties"][name] = {**outer, "anyOf": [prop, _ENV_REF]}


def _what_the_loader_also_reads(defs: Schema) -> None:
    """Shorthands the loader accepts before the models see them: a flow made from a
    ``preset:`` (its keys merged in), and an entity field written as its type alone."""
    config = defs["FlowConfig"]
    defs["FlowConfigFromPreset"] = {
        "type": "object",
        "description": "A flow made from its channel's system type's preset; the keys given "
        "here replace the preset's (source and target merge key by key).",
        "required": ["preset", "channel"],
        "properties": {
            "preset": {"type": "string", "description": "The preset's name."},
            **{k: v for k, v in config["properties"].items() if k not in ("name",)},
            "name": {"type": "string", "description": "Default: the preset's name."},
        },
        "additionalProperties": False,
    }
    field = defs.pop("FieldSpec")
    defs["FieldSpecObject"] = field
    kind = field["properties"]["type"]
    defs["FieldSpec"] = {
        "anyOf": [
            {"$ref": "#/$defs/FieldSpecObject"},
            {k: v for k, v in kind.items() if k != "default"},
        ]
    }


def _type_channel_options(defs: Schema, transports: dict[str, Any], ref: Any) -> None:
    """``channels.*.options`` follow the channel's ``transport``, else its system type's."""
    rules: list[Schema] = []
    for name, cls in transports.items():
        options = ref(cls, "channel_options")
        if options is not None:
            rules.append(
                {
                    "if": {"required": ["transport"], "properties": {"transport": {"const": name}}},
                    "then": {"properties": {"options": options}},
                }
            )
    for system in system_types().values():
        options = ref(transports.get(system.transport), "channel_options")
        if options is None:
            continue
        if system.defaults:
            # What the system type implies (`dialect: odoo`) is not required in the file.
            base = options["$ref"].split("/")[-1]
            implied = f"{base}_{system.name}"
            defs[implied] = dict(defs[base])
            required = [r for r in defs[base].get("required", []) if r not in system.defaults]
            defs[implied]["required"] = required
            if not required:
                del defs[implied]["required"]
            options = {"$ref": f"#/$defs/{implied}"}
        rules.append(
            {
                "if": {
                    "required": ["system"],
                    "properties": {"system": {"const": system.name}},
                    "not": {"required": ["transport"]},
                },
                "then": {"properties": {"options": options}},
            }
        )
    channel = defs["ChannelConfig"]
    channel["properties"]["system"]["examples"] = sorted(system_types())
    channel["properties"]["transport"]["examples"] = sorted(transports)
    channel["allOf"] = rules


def _type_flow_blocks(defs: Schema, transports: dict[str, Any], ref: Any) -> None:
    """A flow's ``source`` and ``target``: the options of any transport that has them."""
    flow = defs["FlowConfig"]["properties"]
    for block, attribute in (("source", "stream_options"), ("target", "target_options")):
        choices = [ref(cls, attribute) for cls in transports.values()]
        unique = [c for i, c in enumerate(choices) if c is not None and c not in choices[:i]]
        if unique:
            flow[block] = {**flow[block], "anyOf": unique}
            flow[block].pop("additionalProperties", None)
            flow[block].pop("type", None)
