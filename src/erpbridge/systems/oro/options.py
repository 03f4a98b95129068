"""The ``jsonapi`` transport's options: a flow's ``source:`` and ``target:`` blocks.

They are the REST transport's blocks (:mod:`erpbridge.transports.rest.options`) with JSON:API's
defaults — items under ``data``, ``page[number]``/``page[size]`` paging, updates by ``PATCH``, a
created resource's id at ``data.id`` — and what JSON:API adds: ``include`` when reading, and when
writing the resource ``type``, the fields that are ``relationships`` and those sent ``included``.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.transports.rest.options import RestStreamOptions, RestTargetOptions
from erpbridge.transports.rest.paging import PagePagination, Pagination

__all__ = [
    "JsonApiIncluded",
    "JsonApiRelationship",
    "JsonApiStreamOptions",
    "JsonApiTargetOptions",
]


def _resource_defaults(data: Any, **defaults: str) -> Any:
    """A ``resource:`` block (or its path shorthand) with JSON:API's defaults filled in."""
    if not isinstance(data, dict):
        return data
    block = data.get("resource")
    if isinstance(block, str):
        block = {"path": block}
    if isinstance(block, dict):
        data = {**data, "resource": {**defaults, **block}}
    return data


def _pages() -> PagePagination:
    return PagePagination(type="page", page_param="page[number]", size_param="page[size]")


class JsonApiStreamOptions(RestStreamOptions):
    """A flow's ``source:`` block: which collection, which related resources to include."""

    pagination: Pagination = Field(
        default_factory=_pages,
        description="How the list pages; default: `page[number]` and `page[size]`, 100 a page.",
    )
    include: list[str] = Field(
        default_factory=list,
        description="Relationship paths whose resources come along (`include=`), e.g. "
        "[lineItems, customer]; a record then holds them whole instead of their ids.",
    )

    @model_validator(mode="before")
    @classmethod
    def _jsonapi_defaults(cls, data: Any) -> Any:
        return _resource_defaults(data, records_path="data")


class _Shorthand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _type_only(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data


class JsonApiRelationship(_Shorthand):
    """A mapped field that is a relationship: the related resource's type, and how to find it.

    Written as a plain string, it is the type, and the field holds the related id.
    """

    type: str = Field(min_length=1, description="The related resource's type, e.g. `products`.")
    lookup: str | None = Field(
        default=None,
        description="A query parameter that finds the related resource by the field's value, "
        "e.g. `filter[sku]`: the field then holds a business key, not an id.",
    )
    path: str | None = Field(
        default=None, description="Where a lookup lists the related resources; default: the type."
    )


class JsonApiIncluded(_Shorthand):
    """A mapped field whose objects are sent as included resources of a create."""

    type: str = Field(min_length=1, description="Their resource type, e.g. `orderlineitems`.")
    relationships: dict[str, JsonApiRelationship] = Field(
        default_factory=dict, description="Their own fields that are relationships."
    )


class JsonApiTargetOptions(RestTargetOptions):
    """A flow's ``target:`` block: the resource type, its relationships, what goes included."""

    type: str = Field(min_length=1, description="The written resource's type, e.g. `customers`.")
    relationships: dict[str, JsonApiRelationship] = Field(
        default_factory=dict,
        description="Mapped fields that are relationships: field → related type (or a block "
        "with `type`, `lookup`, `path`).",
    )
    included: dict[str, JsonApiIncluded] = Field(
        default_factory=dict,
        description="Mapped fields (lists of objects) sent as included resources when the "
        "resource is created, e.g. an order's lineItems; an update leaves them as they are.",
    )
    id_path: str | None = Field(
        default="data.id", description="Dot path of the new id in a create's answer."
    )

    @model_validator(mode="before")
    @classmethod
    def _jsonapi_defaults(cls, data: Any) -> Any:
        return _resource_defaults(data, records_path="data", update_method="PATCH")

    @model_validator(mode="after")
    def _apart(self) -> Self:
        both = sorted(set(self.relationships) & set(self.included))
        if both:
            raise ValueError(f"{', '.join(both)}: a field is a relationship or included, not both")
        return self
