"""What an API caller may read: the store's read scope of an authenticated principal."""

from __future__ import annotations

from erpbridge.api.auth import Principal
from erpbridge.api.context import Hub
from erpbridge.store.read import EVERYTHING, Scope

__all__ = ["read_scope"]


def read_scope(hub: Hub, who: Principal) -> Scope:
    """Everything for an unrestricted client; otherwise its channels, their flows and itself."""
    if who.channels is None:
        return EVERYTHING
    flows = {f.name: f.channel for f in hub.config.model.flows}
    return Scope.restricted(who.channels, flows, who.name)
