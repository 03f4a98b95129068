"""What every API request can reach: the configuration, the store, the runner, keys and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy import Engine

from erpbridge.api.keycache import KeyCache
from erpbridge.api.ratelimit import Limiter
from erpbridge.api.tokens import Keyring
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.operations import Operations
from erpbridge.engine.reloader import Reloader
from erpbridge.engine.runner import FlowRunner
from erpbridge.pci import redact_card_numbers
from erpbridge.saml import SamlTrust
from erpbridge.store.adminaudit import record_action
from erpbridge.store.secretbox import SecretBox

__all__ = ["ApiError", "Hub", "get_engine", "get_hub", "hub_of"]


class ApiError(Exception):
    """An answer other than success: status, a stable code, a message naming place and cause."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        message = redact_card_numbers(message)  # some quote the request (a key, a name)
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclass
class Hub:
    """The hub as the API sees it; one per app."""

    config: LoadedConfig
    engine: Engine
    keyring: Keyring
    limiter: Limiter
    box: SecretBox
    #: Called after events queued deliveries (wakes the embedded worker); None: nobody to wake.
    wake: Callable[[], None] | None = None
    #: ``GET /healthz`` report of the embedded service, when there is one.
    health: Callable[[], dict[str, Any]] | None = None
    #: The SAML identity provider(s) trusted (``hub.api.saml``); None: SAML is off.
    saml: SamlTrust | None = None
    runner: FlowRunner = field(init=False)
    operations: Operations = field(init=False)
    #: API keys of event senders this process checked lately (``hub.api.key_cache_s``).
    keys: KeyCache = field(init=False)

    #: Reloads this process's configuration (``erpbridge run``/``api``); None: it cannot.
    reloader: Reloader | None = None

    def __post_init__(self) -> None:
        self.runner = FlowRunner(self.config, self.engine, on_queued=self.wake)
        self.operations = Operations(self.config)
        self.keys = KeyCache(self.config.model.hub.api.key_cache_s)

    def reload(self, config: LoadedConfig) -> None:
        """Serve ``config`` from the next request on (one under way keeps the old one).

        Channels, flows, entities, mappings and workflows take effect; ``hub.api`` (keys,
        limits, SAML, TLS, the address) and the store are read at start only."""
        self.runner = FlowRunner(config, self.engine, on_queued=self.wake)
        self.operations = Operations(config)
        self.config = config

    def audit(
        self,
        actor: str,
        address: str | None,
        action: str,
        target: str | None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record an administrative action: who, from where, what, on what, and how it went."""
        record_action(self.engine, actor, address, action, target, outcome, detail)


def hub_of(request: Request) -> Hub:
    """The app's :class:`Hub` (for code outside dependency injection)."""
    hub: Hub = request.app.state.hub
    return hub


# The dependencies are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread,
# one trip there and back per request for a dictionary read.
async def get_hub(request: Request) -> Hub:
    """FastAPI dependency: the app's :class:`Hub`."""
    return hub_of(request)


async def get_engine(request: Request) -> Engine:
    """FastAPI dependency: the hub store's engine."""
    return hub_of(request).engine
