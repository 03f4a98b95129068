"""OData writes: each record version becomes a create (POST, a deep insert with its items) or an
update (PATCH with ``If-Match``) of one entity.

``mode: upsert`` reads the entity by its key first. Missing: POST with the nested items
(deep insert). Present: PATCH only the properties that differ, with the ETag just read in
``If-Match``; a 412 (someone changed it in between) is retried by the worker with a fresh read.
Then each nested item is upserted the same way through its own entity set (compound keys, the
parent's key filled in), a new one created through the parent's navigation property; items are
never deleted. Writing the same version twice therefore changes nothing the second time.
``mode: create`` always POSTs (the service assigns the key, e.g. sales order numbers): meant for
documents that are sent once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from erpbridge.errors import FatalError
from erpbridge.transports.base import OutgoingRecord, TargetOptions
from erpbridge.transports.http import HttpRefused
from erpbridge.transports.odata.client import ODataClient
from erpbridge.transports.odata.edm import EntityType, Metadata, same_value, to_wire
from erpbridge.transports.odata.query import key_predicate

__all__ = ["ODataTargetOptions", "ODataWriter", "key_text"]


class ODataTargetOptions(TargetOptions):
    """A flow's ``target:``: the entity set, and how a record version is written to it."""

    entity_set: str = Field(min_length=1, description="The entity set, e.g. A_SalesOrder.")
    mode: Literal["upsert", "create"] = Field(
        default="upsert",
        description="`upsert`: read by key, then POST or PATCH; `create`: always POST.",
    )
    items_on_update: Literal["upsert", "ignore"] = Field(
        default="upsert",
        description="On an update, upsert each nested item through its own entity set, or "
        "leave the items alone.",
    )


def key_text(values: Mapping[str, Any], entity: EntityType) -> str:
    """An entity's id in the channel: its key value, or its key values joined by ``|``."""
    return "|".join(str(values.get(name)) for name in entity.keys)


class _Refused(Exception):
    """A record that cannot be written as it is (unknown property, bad value, missing key)."""


class ODataWriter:
    """Writes record versions of OUT flows to one OData service."""

    def __init__(self, client: ODataClient) -> None:
        self.client = client
        self.version = client.version

    def entity_type(self, metadata: Metadata, entity_set: str) -> EntityType:
        """The type of ``entity_set``; an error in the ``schema`` category when it is unknown."""
        entity = metadata.entity_type(entity_set)
        if entity is None:
            offered = ", ".join(sorted(metadata.sets)) or "none"
            raise HttpRefused(
                f"channel {self.client.channel!r}: the service at {self.client.http.base_url} "
                f"has no entity set {entity_set!r} (it offers: {offered})",
                None,
                "schema",
            )
        return entity

    def write(self, target: ODataTargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Write ``records`` one by one; each one's key in the channel."""
        metadata = self.client.metadata()
        entity = self.entity_type(metadata, target.entity_set)
        ids: list[str | None] = []
        for record in records:
            try:
                body = self._wire(metadata, entity, record.data, "")
                ids.append(self._one(metadata, entity, target, body))
            except _Refused as exc:
                raise self._fatal(target, record, exc) from None
        return ids

    def delete(self, target: ODataTargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Delete each record's entity, found by its key as for an update; one that is not
        there is deleted already."""
        metadata = self.client.metadata()
        entity = self.entity_type(metadata, target.entity_set)
        ids: list[str | None] = []
        for record in records:
            try:
                body = self._wire(metadata, entity, record.data, "")
                path = target.entity_set + self._predicate(entity, body, "")
            except _Refused as exc:
                raise self._fatal(target, record, exc) from None
            current, etag = self.client.entity(path)
            if current is not None:
                self.client.delete(path, etag)
            ids.append(self._id(entity, body))
        return ids

    def _fatal(
        self, target: ODataTargetOptions, record: OutgoingRecord, exc: Exception
    ) -> FatalError:
        return FatalError(
            f"channel {self.client.channel!r}: {target.entity_set}: {record.entity} "
            f"{record.key!r} v{record.version} (delivery {record.delivery_id}): {exc}"
        )

    def _one(
        self,
        metadata: Metadata,
        entity: EntityType,
        target: ODataTargetOptions,
        body: dict[str, Any],
    ) -> str | None:
        if target.mode == "create":
            created = self.client.create(target.entity_set, body)
            return self._id(entity, created or body)
        path = target.entity_set + self._predicate(entity, body, "")
        current, etag = self.client.entity(path)
        if current is None:
            created = self.client.create(target.entity_set, body)
            return self._id(entity, created or body)
        scalars = {name: value for name, value in body.items() if name in entity.properties}
        self._update(entity, path, current, etag, scalars)
        if target.items_on_update == "upsert":
            keys = {name: body[name] for name in entity.keys}
            for name, value in body.items():
                if name in entity.navigation and value is not None:
                    self._items(metadata, entity, path, keys, name, value)
        return self._id(entity, body)

    def _update(
        self,
        entity: EntityType,
        path: str,
        current: Mapping[str, Any],
        etag: str | None,
        wanted: Mapping[str, Any],
    ) -> None:
        # Only what differs: an unchanged entity keeps its modified-at, so a two-way flow does
        # not read our own write back as a change.
        changes = {
            name: value
            for name, value in wanted.items()
            if name not in entity.keys
            and not same_value(entity.properties.get(name), current.get(name), value)
        }
        if changes:
            self.client.update(path, changes, etag)

    def _items(
        self,
        metadata: Metadata,
        parent: EntityType,
        parent_path: str,
        parent_keys: Mapping[str, Any],
        name: str,
        value: Any,
    ) -> None:
        nav = parent.navigation[name]
        item_type = metadata.types.get(nav.type)
        item_set = metadata.set_of(nav.type)
        if item_type is None or item_set is None:
            raise _Refused(f"{name}: no entity set holds {nav.type}, so items cannot be updated")
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            # The parent's key is usually part of the item's (SalesOrder in A_SalesOrderItem).
            inherited = {k: v for k, v in parent_keys.items() if k in item_type.properties}
            data = {**inherited, **item}
            where = f"{name}[{index}]."
            path = item_set + self._predicate(item_type, data, where)
            current, etag = self.client.entity(path)
            if current is None:
                self.client.create(f"{parent_path}/{name}", data)
                continue
            scalars = {k: v for k, v in data.items() if k in item_type.properties}
            self._update(item_type, path, current, etag, scalars)

    def _predicate(self, entity: EntityType, data: Mapping[str, Any], where: str) -> str:
        try:
            return key_predicate(data, entity, self.version)
        except ValueError as exc:
            raise _Refused(
                f"{where}{exc}: map it (key of {entity.name}: {', '.join(entity.keys)}), or use "
                "mode: create when the service assigns it"
            ) from None

    def _id(self, entity: EntityType, data: Mapping[str, Any]) -> str | None:
        if any(data.get(name) in (None, "") for name in entity.keys):
            return None
        return key_text(data, entity)

    def _wire(
        self, metadata: Metadata, entity: EntityType, data: Mapping[str, Any], path: str
    ) -> dict[str, Any]:
        """A mapped record in the service's JSON shape, checked against ``$metadata``."""
        out: dict[str, Any] = {}
        for name, value in data.items():
            prop = entity.properties.get(name)
            if prop is not None:
                try:
                    out[name] = to_wire(value, prop, self.version)
                except (ValueError, ArithmeticError) as exc:
                    raise _Refused(f"{path}{name}: not a valid {prop.type}: {exc}") from None
                continue
            nav = entity.navigation.get(name)
            if nav is None:
                known = ", ".join([*entity.properties, *entity.navigation])
                raise _Refused(f"{path}{name}: {entity.name} has no such property (it has {known})")
            target = metadata.types.get(nav.type)
            if target is None or value is None:
                out[name] = value
            elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
                out[name] = [
                    self._wire(metadata, target, item, f"{path}{name}[{i}].")
                    for i, item in enumerate(value)
                ]
            elif isinstance(value, dict):
                out[name] = self._wire(metadata, target, value, f"{path}{name}.")
            else:
                raise _Refused(f"{path}{name}: expected an object or a list of objects")
        return out
