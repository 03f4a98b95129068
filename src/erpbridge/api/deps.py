"""The parameter types the operating routes share: the hub, the caller by scope, names, ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query

from erpbridge.api.auth import Principal, require
from erpbridge.api.context import Hub, get_hub

__all__ = ["Admin", "HubDep", "Limit", "Name", "Reader", "RowId", "Writer"]

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
#: A flow's or channel's name as the configuration allows it.
Name = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
#: A row id: positive and within a 64-bit integer, as the store keeps them.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
