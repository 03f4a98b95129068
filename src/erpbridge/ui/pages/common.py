"""What every page module shares: dependencies, the flows a user may see, redirects that say
what happened."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Path
from fastapi.responses import RedirectResponse

from erpbridge.api.context import Hub, get_hub
from erpbridge.config.models import FlowConfig
from erpbridge.store.switches import FlowSwitch
from erpbridge.ui.auth import Operator, Refused, require_role

__all__ = [
    "Administers",
    "HubDep",
    "Operates",
    "Reads",
    "RowId",
    "after_action",
    "is_paused",
    "trigger_text",
    "visible_flow",
    "visible_flows",
]

HubDep = Annotated[Hub, Depends(get_hub)]
#: A row id in a path: a positive 64-bit integer (anything else is a 422, never a 500).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: The signed-in user, holding the role a route needs (checked on the server, every request).
Reads = Annotated[Operator, require_role("read")]
Operates = Annotated[Operator, require_role("write")]
Administers = Annotated[Operator, require_role("admin")]


def visible_flows(hub: Hub, who: Operator) -> list[FlowConfig]:
    """The configured flows of the channels ``who`` may see, in configuration order."""
    return [f for f in hub.config.model.flows if who.principal.may_channel(f.channel)]


def visible_flow(hub: Hub, who: Operator, name: str) -> FlowConfig:
    """The flow ``name`` if ``who`` may see it; 404 otherwise (so names do not leak)."""
    for flow in hub.config.model.flows:
        if flow.name == name and who.principal.may_channel(flow.channel):
            return flow
    raise Refused(404, f"no flow named {name!r}")


def is_paused(flow: FlowConfig, switch: FlowSwitch | None) -> bool:
    """Paused: its last switch says so, else the configuration (``enabled: false``)."""
    return not (switch.enabled if switch is not None else flow.enabled)


def trigger_text(flow: FlowConfig) -> str:
    """A flow's trigger in a word or two (``every 10s``, ``cron 0 * * * *``, ``immediate``)."""
    trigger: Any = flow.trigger
    if isinstance(trigger, str):
        return trigger
    data = trigger.model_dump(exclude_none=True)
    return ", ".join(f"{k} {v}" for k, v in data.items() if v not in ([], {}))


def after_action(target: str, notice: str, *, failed: bool = False) -> RedirectResponse:
    """Back to ``target`` after a POST (post/redirect/get), saying what happened (in red when
    it ``failed``)."""
    sep = "&" if "?" in target else "?"
    query = {"notice": notice, **({"failed": "1"} if failed else {})}
    return RedirectResponse(f"{target}{sep}{urlencode(query)}", status_code=303)
