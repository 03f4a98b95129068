"""The registry stage: each channel's system type and transport, its options, operations,
webhooks, and the API's identity providers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from erpbridge.config.api import OPERATION_KEYS, OperationSettings
from erpbridge.config.models import ConfigFile
from erpbridge.config.problems import Loc, Problems, did_you_mean
from erpbridge.config.validation import SetAside
from erpbridge.systems import SystemType
from erpbridge.transports import TransportClass, available_transports, load_transport
from erpbridge.transports.base import OperationOptions

__all__ = [
    "ChannelChecks",
    "check_channels",
    "check_identity_providers",
    "check_inbound",
    "check_operations",
    "check_saml",
]

Operations = dict[str, dict[str, tuple[OperationSettings, OperationOptions]]]


@dataclass
class ChannelChecks:
    """Each channel's transport class, and its validated options where they were valid.

    A channel whose options are wrong keeps its class here, so that its flows' ``source`` and
    ``target`` are still checked against it in the same run.
    """

    classes: dict[str, TransportClass] = field(default_factory=dict)
    options: dict[str, BaseModel] = field(default_factory=dict)

    def transports(self) -> dict[str, TransportClass]:
        """The channels ready to open: a transport and valid options."""
        return {name: cls for name, cls in self.classes.items() if name in self.options}


def check_channels(
    model: ConfigFile, systems: Mapping[str, SystemType], problems: Problems, aside: SetAside
) -> ChannelChecks:
    """Load each channel's transport and validate its options against it."""
    found = ChannelChecks()
    for name, channel in model.channels.items():
        system = systems.get(channel.system)
        if system is None:
            problems.add(
                ("channels", name, "system"),
                f"unknown system type {channel.system!r}{did_you_mean(channel.system, systems)} "
                f"(known: {', '.join(sorted(systems))})",
            )
            continue
        transport_name = channel.transport or system.transport
        try:
            cls = load_transport(transport_name)
        except KeyError:
            known = sorted(available_transports())
            problems.add(
                ("channels", name, "transport"),
                f"unknown transport {transport_name!r}{did_you_mean(transport_name, known)} "
                f"(known: {', '.join(known)})",
            )
            continue
        except Exception as exc:  # noqa: BLE001 - a third-party plugin may fail in any way
            problems.add(
                ("channels", name, "transport"),
                f"transport {transport_name!r} failed to load: {type(exc).__name__}: {exc}",
            )
            continue
        found.classes[name] = cls
        if aside.setting("channels", name, "options", "credentials", "transport"):
            continue  # already reported; its defaults would only add follow-on problems
        # A system type's implied options only fit its own transport, not an override.
        implied = system.defaults if transport_name == system.transport else {}
        raw: dict[str, Any] = {**implied, **channel.options}
        if "credentials" in cls.channel_options.model_fields:
            # Secrets reach a transport only from the channel's credentials block (${ENV} refs).
            raw["credentials"] = channel.credentials
        try:
            found.options[name] = cls.channel_options.model_validate(raw)
        except ValidationError as exc:
            problems.add_validation(("channels", name, "options"), exc, cls.channel_options)
    return found


def check_operations(
    model: ConfigFile, classes: Mapping[str, TransportClass], problems: Problems
) -> Operations:
    """Each channel's ``operations:``, validated against its transport's call options."""
    found: Operations = {}
    for channel, config in model.channels.items():
        if not config.operations or channel not in classes:
            continue
        options_model = getattr(classes[channel], "operation_options", None)
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
                problems.add_validation(loc, exc, options_model)
                continue
            found.setdefault(channel, {})[name] = (settings, options)
    return found


def check_inbound(model: ConfigFile, problems: Problems, aside: SetAside) -> None:
    """A channel's webhook feeds one of its own IN flows and names one of its credentials."""
    for name, channel in model.channels.items():
        hook = channel.inbound.webhook if channel.inbound else None
        if hook is None:
            continue
        loc = ("channels", name, "inbound", "webhook")
        flow = next((f for f in model.flows if f.name == hook.flow), None)
        if (flow is None or flow.direction != "in" or flow.channel != name) and not (
            flow is None and aside.flow(hook.flow)
        ):
            problems.add((*loc, "flow"), f"{hook.flow!r} is not an IN flow of channel {name!r}")
        if hook.secret not in channel.credentials and not aside.setting(
            "channels", name, "credentials"
        ):
            problems.add(
                (*loc, "secret"),
                f"the channel has no credential {hook.secret!r} (add it under credentials: "
                "as ${ENV_VAR})",
            )


def check_identity_providers(model: ConfigFile, problems: Problems, aside: SetAside) -> None:
    """Issuers are unique; an unmapped grant names existing channels."""
    seen: set[str] = set()
    for i, provider in enumerate(model.hub.api.identity_providers):
        loc: Loc = ("hub", "api", "identity_providers", i)
        if provider.issuer in seen:
            problems.add((*loc, "issuer"), f"issuer {provider.issuer!r} is listed twice")
        seen.add(provider.issuer)
        grant = provider.unmapped
        for channel in grant.channels or [] if grant else []:
            if channel not in model.channels and not aside.channel(channel):
                problems.add(
                    (*loc, "unmapped", "channels"),
                    f"no channel named {channel!r}{did_you_mean(channel, model.channels)}",
                )


def check_saml(model: ConfigFile, problems: Problems, aside: SetAside) -> None:
    """A SAML grant or back-office role names existing channels."""
    saml = model.hub.api.saml
    if saml is None:
        return
    rules: list[tuple[tuple[str | int, ...], list[str] | None]] = [
        (("grants", index), rule.channels) for index, rule in enumerate(saml.grants)
    ]
    if saml.backoffice is not None:
        rules += [
            (("backoffice", "roles", index), rule.channels)
            for index, rule in enumerate(saml.backoffice.roles)
        ]
    for place, channels in rules:
        unknown = sorted(
            c for c in set(channels or ()) - set(model.channels) if not aside.channel(c)
        )
        if unknown:
            problems.add(
                ("hub", "api", "saml", *place, "channels"),
                f"no channel named {', '.join(unknown)}",
            )
