"""``/api/v1/channels/{channel}/operations``: real-time questions answered by a channel
(PO validation, price calculation, customer look-up) within the caller's request."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from erpbridge.api.auth import Principal, require
from erpbridge.api.body import json_body
from erpbridge.api.context import ApiError, Hub, get_hub
from erpbridge.engine.operations import OperationTimeout, UnknownOperation
from erpbridge.errors import DataError, ErpbridgeError, FatalError, RetriableError

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["operations"])
HubDep = Annotated[Hub, Depends(get_hub)]
Name = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
Caller = Annotated[Principal, Depends(require("operations", "operations"))]


class OperationOut(BaseModel):
    """An operation a channel offers."""

    name: str
    description: str
    timeout_s: float
    cache_s: float


class AnswerOut(BaseModel):
    """The channel's answer."""

    channel: str
    operation: str
    result: Any
    cached: bool
    took_ms: float


@router.get("/channels/{channel}/operations")
def list_operations(channel: Name, hub: HubDep, who: Caller) -> list[OperationOut]:
    """The real-time operations of a channel."""
    if channel not in hub.config.model.channels:
        raise ApiError(404, "not_found", f"no channel named {channel!r}")
    who.check_channel(channel)
    offered = hub.config.operations.get(channel, {})
    return [
        OperationOut(
            name=name,
            description=settings.description,
            timeout_s=settings.timeout_s,
            cache_s=settings.cache_s,
        )
        for name, (settings, _) in sorted(offered.items())
    ]


@router.post(
    "/channels/{channel}/operations/{name}",
    responses={
        400: {"description": "the body is not a JSON object"},
        404: {"description": "no such operation"},
        413: {"description": "the body exceeds max_body_mb"},
        422: {"description": "a parameter is missing or wrong"},
        502: {"description": "the channel refused or answered wrongly"},
        503: {"description": "the channel is unreachable or busy"},
        504: {"description": "no answer within the operation's timeout"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The operation's parameters.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def call_operation(
    channel: Name, name: Name, request: Request, hub: HubDep, who: Caller
) -> AnswerOut:
    """Call the operation synchronously and answer with the channel's result.

    The upstream's words (its URL, its error body) go to ``admin`` callers only; everyone else
    learns the channel, the operation and the kind of failure. The log always has them.
    """
    if channel not in hub.config.model.channels:
        raise ApiError(404, "not_found", f"no channel named {channel!r}")
    who.check_channel(channel)
    params = await json_body(request, hub.config.model.hub.api.max_body_mb)
    if not isinstance(params, dict):
        raise ApiError(400, "bad_shape", "the parameters must be a JSON object")
    where = f"channel {channel!r}, operation {name!r}"
    try:
        answer = await run_in_threadpool(hub.operations.call, channel, name, params)
    except UnknownOperation as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except OperationTimeout as exc:
        raise ApiError(504, "timeout", str(exc)) from None
    except DataError as exc:
        raise ApiError(422, "bad_parameters", f"{where}: {exc}") from None
    except RetriableError as exc:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else {}
        shown = _upstream(who, where, exc, "is unreachable or busy")
        raise ApiError(503, "channel_unavailable", shown, headers) from None
    except (FatalError, ErpbridgeError) as exc:
        raise ApiError(502, "channel_refused", _upstream(who, where, exc, "refused")) from None
    return AnswerOut(
        channel=channel,
        operation=name,
        result=answer.value,
        cached=answer.cached,
        took_ms=answer.took_ms,
    )


def _upstream(who: Principal, where: str, exc: ErpbridgeError, what: str) -> str:
    """The failure as ``who`` may see it: whole for admin, else without URLs and bodies."""
    log.warning("%s (client %r): %s", where, who.name, exc)
    if who.may("admin"):
        return f"{where}: {exc}"
    status = getattr(exc, "status", None)
    answered = f" (HTTP {status})" if status else ""
    return f"{where}: the channel {what}{answered}; an admin can see the details in the log"
