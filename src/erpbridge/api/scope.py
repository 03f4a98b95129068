"""What an API caller may read: the store's read scope of an authenticated principal."""

from __future__ import annotations

from erpbridge.api.auth import Principal
from erpbridge.api.context import ApiError, Hub
from erpbridge.config.models import FlowConfig
from erpbridge.store.read import EVERYTHING, Scope

__all__ = ["read_scope", "visible_flow"]


def read_scope(hub: Hub, who: Principal) -> Scope:
    """Everything for an unrestricted client; otherwise its channels, their flows and itself."""
    if who.channels is None:
        return EVERYTHING
    flows = {f.name: f.channel for f in hub.config.model.flows}
    return Scope.restricted(who.channels, flows, who.name)


def visible_flow(hub: Hub, name: str, who: Principal) -> FlowConfig:
    """The configured flow ``name`` if ``who`` may reach its channel; else 404 or 403."""
    try:
        flow = hub.config.flow(name)
    except KeyError:
        raise ApiError(404, "not_found", f"no flow named {name!r}") from None
    who.check_channel(flow.channel)
    return flow
