"""``owners:``: which channel's IN flows may change which fields of an entity (``store.merge``)."""

from __future__ import annotations

from erpbridge.config.models import ConfigFile
from erpbridge.config.problems import Problems
from erpbridge.model.entities import EntityCatalog
from erpbridge.yamlfile import Loc

__all__ = ["check_owners"]


def check_owners(model: ConfigFile, catalog: EntityCatalog, problems: Problems) -> None:
    """Known entities, channels and fields; no business key; one owner per field."""
    for entity, by_channel in model.owners.items():
        at: Loc = ("owners", entity)
        spec = catalog.get(entity)
        if spec is None:
            problems.add(at, f"unknown entity {entity!r} (entities: {', '.join(catalog)})")
            continue
        owner: dict[str, str] = {}
        for channel, fields in by_channel.items():
            if channel not in model.channels:
                known = ", ".join(model.channels) or "none"
                problems.add((*at, channel), f"unknown channel {channel!r} (channels: {known})")
            for i, name in enumerate(fields):
                if name not in spec.fields:
                    problems.add((*at, channel, i), f"{entity} has no field {name!r}")
                elif name in spec.key:
                    problems.add((*at, channel, i), f"{name!r} is the business key: nobody owns it")
                elif name in owner:
                    problems.add(
                        (*at, channel, i), f"{name!r} is owned by channel {owner[name]!r} already"
                    )
                else:
                    owner[name] = channel
