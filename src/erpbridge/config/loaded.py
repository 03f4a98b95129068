"""A validated configuration, and the runtime factory: transports, flows, the store's URL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, SecretStr

from erpbridge.config.api import OperationSettings
from erpbridge.config.models import ConfigFile, FlowConfig
from erpbridge.config.outline import Outline, resolve_sqlite_url
from erpbridge.config.reconciliation import ReconcilePlan
from erpbridge.config.secrets import STORED
from erpbridge.errors import ConfigProblem, CredentialNotSet
from erpbridge.mapping.compiler import CompiledMapping
from erpbridge.model.entities import EntityCatalog
from erpbridge.transports import StreamOptions, TransportClass
from erpbridge.transports.base import OperationOptions, TargetOptions, Transport
from erpbridge.workflows.machine import Workflow
from erpbridge.workflows.triggers import Trigger

if TYPE_CHECKING:
    from erpbridge.documents.render import CompiledDocument

__all__ = ["LoadedConfig", "resolve_sqlite_url"]


@dataclass
class LoadedConfig(Outline):
    """A validated configuration with everything compiled that can be compiled up front."""

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
    #: ``documents:`` compiled: name → template ready to render.
    documents: dict[str, CompiledDocument] = field(default_factory=dict)
    #: What ``erpbridge check`` warns about (``file:line path: message``); not errors.
    warnings: list[ConfigProblem] = field(default_factory=list)
    #: The compiled workflows by name (``workflows:``).
    workflows: dict[str, Workflow] = field(default_factory=dict)
    #: OUT flow name → its compiled ``when:`` (flows without one get every version).
    triggers: dict[str, Trigger] = field(default_factory=dict)
    #: Flow name → its ``reconcile:`` block compiled (flows without one are absent).
    reconcile: dict[str, ReconcilePlan] = field(default_factory=dict)

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

    def workflows_of(self, entity: str) -> list[Workflow]:
        """The workflows of ``entity`` (one per status field), in file order."""
        return [w for w in self.workflows.values() if w.entity == entity]

    def secret_values(self) -> list[str]:
        """Every secret value this configuration holds (channel credentials, stored ones once
        filled in, URL passwords, notifier secrets): the logs never show them."""
        found: list[str] = []
        for channel, settings in self.model.channels.items():
            found += [v.get_secret_value() for v in settings.credentials.values()]
            credentials = getattr(self.channel_options.get(channel), "credentials", None)
            if isinstance(credentials, dict):
                found += [
                    v.get_secret_value() for v in credentials.values() if isinstance(v, SecretStr)
                ]
            found += [
                _url_password(v) or "" for v in settings.options.values() if isinstance(v, str)
            ]
        found.append(_url_password(self.database_url()) or "")
        for notifier in self.model.alerts.notifiers.values():
            if notifier.webhook is not None:
                found.append(notifier.webhook.secret.get_secret_value())
            if notifier.email is not None and notifier.email.password is not None:
                found.append(notifier.email.password.get_secret_value())
        return [value for value in found if value and value != STORED]


def _url_password(url: str) -> str | None:
    """The password of a ``scheme://user:password@host`` URL, if it has one."""
    match = re.match(r"^[a-z0-9+]+://[^:/@\s]+:([^@\s]+)@", url, re.IGNORECASE)
    return match.group(1) if match else None
