"""The REST transport's options: the channel (shared HTTP options), a resource's paths, a flow's
``source:`` (list, pagination, changed-since) and ``target:`` (how a record is written) blocks.

How the options are used is :mod:`erpbridge.transports.rest.transport`.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.transports.base import StreamOptions, TargetOptions
from erpbridge.transports.http import HttpChannelOptions
from erpbridge.transports.rest.cursor import IncrementalOptions
from erpbridge.transports.rest.paging import NoPagination, Pagination

__all__ = [
    "PathKind",
    "RestChannelOptions",
    "RestResource",
    "RestStreamOptions",
    "RestTargetOptions",
]

#: The paths a resource has.
PathKind = Literal["list", "item", "create", "update", "delete"]


class RestChannelOptions(HttpChannelOptions):
    """A REST channel's ``options:``: the shared HTTP options, plus where to check health."""

    health_path: str | None = Field(
        default=None,
        description="GET this path (relative to base_url) for `erpbridge channels test`; it "
        "must answer 2xx. Unset: the base URL, and any answer but 401, 403 and 5xx will do.",
    )


class RestResource(BaseModel):
    """Where a resource's list, items and writes live, relative to the channel's ``base_url``.

    ``path`` alone (or the block written as a plain string) gives the usual layout:
    ``GET path``, ``POST path``, ``PUT|PATCH|DELETE path/{id}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str | None = Field(default=None, description="The collection, e.g. `customers`.")
    list_path: str | None = Field(default=None, description="Lists the items; default: path.")
    item_path: str | None = Field(
        default=None, description="One item, with `{id}`; default: path/{id}."
    )
    create_path: str | None = Field(default=None, description="POST creates here; default: path.")
    update_path: str | None = Field(
        default=None, description="PUT/PATCH updates here, with `{id}`; default: item_path."
    )
    delete_path: str | None = Field(
        default=None, description="DELETE removes here, with `{id}`; default: item_path."
    )
    update_method: Literal["PUT", "PATCH"] = Field(
        default="PUT", description="PUT replaces the item, PATCH merges into it."
    )
    records_path: str = Field(
        default="", description="Dot path of the item list in a list's body; empty: the body."
    )
    id_field: str = Field(default="id", min_length=1, description="The item's id field.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _placeholders(self) -> Self:
        for name in ("item_path", "update_path", "delete_path"):
            value = getattr(self, name)
            if value is not None and "{id}" not in value:
                raise ValueError(f"{name} {value!r} needs an {{id}} placeholder")
        return self

    def url(self, kind: PathKind) -> str | None:
        """The path template of ``kind``, from its own option or from ``path``."""
        item = self.item_path or (f"{self.path.rstrip('/')}/{{id}}" if self.path else None)
        return {
            "list": self.list_path or self.path,
            "item": item,
            "create": self.create_path or self.path,
            "update": self.update_path or item,
            "delete": self.delete_path or item,
        }[kind]

    def need(self, *kinds: PathKind) -> None:
        """``ValueError`` naming the first of ``kinds`` that has no path."""
        for kind in kinds:
            if self.url(kind) is None:
                raise ValueError(f"resource needs `path` or `{kind}_path`")


class RestStreamOptions(StreamOptions):
    """A flow's ``source:`` block: which list to read, how it pages, how it filters changes."""

    resource: RestResource = Field(description="The resource whose list is read.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters of every list request (sorting…)."
    )
    pagination: Pagination = Field(
        default_factory=NoPagination, description="How the list pages; default: one request."
    )
    incremental: IncrementalOptions | None = Field(
        default=None, description="Read only what changed since the last run."
    )

    @model_validator(mode="after")
    def _readable(self) -> Self:
        self.resource.need("list")
        return self


class RestTargetOptions(TargetOptions):
    """A flow's ``target:`` block: how a record version becomes a create or an update."""

    resource: RestResource = Field(description="The resource written to.")
    mode: Literal["upsert", "create", "update"] = Field(
        default="upsert", description="Create or update (default), only create, only update."
    )
    id_from: str | None = Field(
        default=None,
        description="Dot path in the mapped record of the item's id; default: the hub's key.",
    )
    lookup: dict[str, str] | None = Field(
        default=None,
        description="Find the item by a GET on the list path: query parameter → dot path in "
        "the mapped record, e.g. {code: code}.",
    )
    id_path: str | None = Field(
        default=None,
        description="Dot path of the new id in a create's answer; default: the resource's "
        "`id_field`, then the last segment of the Location header.",
    )
    idempotency_header: str | None = Field(
        default="Idempotency-Key",
        description="Header carrying the delivery's idempotency key; null: not sent.",
    )
    delete_if: str | None = Field(
        default=None,
        description="Dot path in the mapped record; a true value deletes the item instead.",
    )

    @model_validator(mode="after")
    def _paths(self) -> Self:
        needs: dict[str, tuple[PathKind, ...]] = {
            "upsert": ("create", "update"),
            "create": ("create",),
            "update": ("update",),
        }
        self.resource.need(*needs[self.mode])
        if self.lookup is not None:
            if self.mode == "create":
                raise ValueError("lookup finds items to update; mode create never updates")
            if not self.lookup:
                raise ValueError("lookup needs at least one parameter")
            self.resource.need("list")
        if self.delete_if is not None:
            if self.mode == "create":
                raise ValueError("delete_if deletes existing items; mode create never finds one")
            self.resource.need("delete")
        return self
