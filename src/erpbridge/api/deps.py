"""The parameter types the operating routes share: the hub, the caller by scope, names, ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Query
from pydantic import AfterValidator

from erpbridge.api.auth import Principal, require
from erpbridge.api.context import Hub, get_hub

__all__ = ["Admin", "HubDep", "Limit", "Name", "Reader", "RowId", "Stamp", "Writer"]

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
#: A flow's or channel's name as the configuration allows it.
Name = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
#: A row id: positive and within a 64-bit integer, as the store keeps them.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; the store writes UTC everywhere, so say so.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: A stored time, always with its zone in answers (RFC 3339).
Stamp = Annotated[datetime, AfterValidator(_utc)]
