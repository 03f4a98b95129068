"""``/ui/channels``: every channel with its health as its flows show it; a channel's page with
its settings (secrets never shown), its stored credentials (names only, set by admins), a
connection test (admins, as ``POST /api/v1/channels/{name}/test``: the failure kind and detail)
and the history of those tests from the admin audit."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from erpbridge.api import resources
from erpbridge.api.context import ApiError
from erpbridge.config.models import ChannelConfig
from erpbridge.engine.credentials import stored_names
from erpbridge.store.read import audit_page
from erpbridge.ui.auth import Operator, Refused
from erpbridge.ui.pages.common import Administers, HubDep, Reads, after_action
from erpbridge.ui.pages.dashboard import flow_lines
from erpbridge.ui.render import render

__all__ = ["HIDDEN", "router", "shown_options"]

router = APIRouter(include_in_schema=False)
ChannelName = Annotated[str, Path(max_length=128)]
#: Option names whose values are never shown (besides the channel's credential names).
_SECRET = re.compile(r"pass|secret|token|key|credential|auth|private|cert", re.IGNORECASE)
HIDDEN = "•••• (hidden)"


def shown_options(channel: ChannelConfig) -> Any:
    """The channel's options with every secret replaced by :data:`HIDDEN`: values under a
    secret-looking or credential name, and any text holding a credential's value."""
    names = set(channel.credentials)
    values = [v.get_secret_value() for v in channel.credentials.values()]
    values = [v for v in values if len(v) >= 4 and v != "stored"]

    def shown(name: str, value: Any) -> Any:
        if name in names or _SECRET.search(name):
            return HIDDEN
        if isinstance(value, dict):
            return {k: shown(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [shown(name, v) for v in value]
        if isinstance(value, str) and any(secret in value for secret in values):
            return HIDDEN
        return value

    return {k: shown(k, v) for k, v in channel.options.items()}


def _channel(hub: HubDep, who: Operator, name: str) -> ChannelConfig:
    channel = hub.config.model.channels.get(name)
    if channel is None or not who.principal.may_channel(name):
        raise Refused(404, f"no channel named {name!r}")
    return channel


@router.get("/ui/channels", response_class=HTMLResponse)
def channels_list(request: Request, hub: HubDep, who: Reads) -> HTMLResponse:
    """Every channel the user may see, with its health as its flows show it."""
    _, channels, _ = flow_lines(hub, who)
    return render(request, "channels.html", {"title": "Channels", "channels": channels})


@router.get("/ui/channels/{name}", response_class=HTMLResponse)
def channel_detail(request: Request, name: ChannelName, hub: HubDep, who: Reads) -> HTMLResponse:
    """One channel: settings without secrets, credentials by name, flows, test history."""
    channel = _channel(hub, who, name)
    lines, channels, _ = flow_lines(hub, who)
    with hub.engine.connect() as conn:
        history = audit_page(conn, who.scope, action="channel.test", target=name, limit=20)
    context = {
        "title": f"Channel {name}",
        "name": name,
        "channel": channel,
        "health": next(c for c in channels if c.name == name),
        "options": shown_options(channel),
        "credentials": sorted(channel.credentials),
        "stored": stored_names(hub.config, name),
        "flows": [line for line in lines if line.flow.channel == name],
        "history": history,
    }
    return render(request, "channel.html", context)


def _acting(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except ApiError as exc:
        raise Refused(exc.status, exc.message) from None


@router.post("/ui/channels/{name}/test")
def channel_test(request: Request, name: ChannelName, hub: HubDep, who: Administers) -> Response:
    """Test the connection (and read one sample per IN flow); the answer names the failure."""
    _channel(hub, who, name)
    out = _acting(resources.test_channel, name, request, hub, who.principal)
    if out.ok:
        notice = f"channel {name}: connection ok" + "".join(
            f"; {s.flow}: sample {'ok' if s.ok else 'failed'}" for s in out.samples
        )
    else:
        failed = [s for s in out.samples if not s.ok]
        what = failed[0] if out.health.ok and failed else out.health
        notice = f"channel {name} failed: {what.category}: {what.detail}"[:400]
    return after_action(f"/ui/channels/{name}", notice, failed=not out.ok)


@router.post("/ui/channels/{name}/credentials")
def channel_credential(
    name: ChannelName,
    hub: HubDep,
    who: Administers,
    credential: Annotated[str, Form(min_length=1, max_length=128)],
    value: Annotated[str, Form(min_length=1, max_length=8192)],
) -> Response:
    """Store a credential the configuration marks ``stored`` (encrypted; never shown again)."""
    _channel(hub, who, name)
    body = resources.CredentialIn(value=value)
    _acting(resources.put_credential, name, credential, body, hub, who.principal)
    return after_action(f"/ui/channels/{name}", f"credential {credential} of {name} stored")
