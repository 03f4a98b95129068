"""The schema stage: the file against :class:`ConfigFile`, without hiding the later stages.

A part that fails validation is reported, then set aside (a setting that has a default is
dropped, an entry without which nothing makes sense is removed) and the rest validated again,
so that transport, mapping and reference checks still run on everything that is sound. What was
set aside is remembered in :class:`SetAside`, so that no later check reports a follow-on problem
("unknown channel" for a channel that is only broken).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from erpbridge.config.models import ChannelConfig, ConfigFile, FlowConfig
from erpbridge.config.problems import Loc, Problems
from erpbridge.errors import ConfigError

__all__ = ["SetAside", "validate_file"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_ITEMS: dict[str, type[BaseModel]] = {"channels": ChannelConfig, "flows": FlowConfig}
#: Sections of named entries set aside whole when anything in one is wrong.
_NAMED = ("entities", "workflows", "documents")


@dataclass
class SetAside:
    """What the schema stage (or a preset) removed: later checks stay silent about it."""

    #: Names of channels, flows and entities removed, and whole sections removed.
    channels: set[str] = field(default_factory=set)
    flows: set[str] = field(default_factory=set)
    entities: set[str] = field(default_factory=set)
    workflows: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)
    sections: set[str] = field(default_factory=set)
    #: (section, name or file position, setting) dropped to its default.
    settings: set[tuple[str, str | int, str]] = field(default_factory=set)
    #: For each flow left in ``flows:``, its position in the file (for its line).
    flow_positions: list[int] = field(default_factory=list)

    def channel(self, name: str) -> bool:
        """Whether channel ``name`` exists in the file but was set aside."""
        return "channels" in self.sections or name in self.channels

    def flow(self, name: str) -> bool:
        """Whether flow ``name`` may exist in the file but was set aside."""
        return "flows" in self.sections or name in self.flows

    def entity(self, name: str) -> bool:
        """Whether entity ``name`` exists in the file but was set aside."""
        return "entities" in self.sections or name in self.entities

    def document(self, name: str) -> bool:
        """Whether document ``name`` exists in the file but was set aside."""
        return "documents" in self.sections or name in self.documents

    def setting(self, section: str, item: str | int, *names: str) -> bool:
        """Whether any of ``names`` of one channel or flow (by file position) was dropped."""
        return any((section, item, name) in self.settings for name in names)

    def drop_flow(self, flows: list[Any], index: int) -> None:
        """Remove ``flows[index]``, remembering its name."""
        flow = flows.pop(index)
        self.flow_positions.pop(index)
        name = flow.get("name") if isinstance(flow, dict) else None
        if isinstance(name, str):
            self.flows.add(name)


def validate_file(data: dict[str, Any], problems: Problems, aside: SetAside) -> ConfigFile:
    """``data`` as a :class:`ConfigFile`; every schema problem reported, the sound rest kept.

    Raise :class:`ConfigError` only when nothing sound is left to check further.
    """
    reported: set[str] = set()
    for _ in range(5):  # each round removes what failed; a few rounds always settle
        try:
            return ConfigFile.model_validate(data)
        except ValidationError as exc:
            before = len(problems.found)
            problems.add_validation((), exc, ConfigFile)
            # A later round reports only what the earlier ones did not.
            new = problems.found[before:]
            problems.found[before:] = [p for p in new if str(p) not in reported]
            reported.update(str(p) for p in new)
            if not _set_aside(data, exc, aside):
                break
    raise ConfigError(problems.found)


def _set_aside(data: dict[str, Any], exc: ValidationError, aside: SetAside) -> bool:
    """Remove what ``exc`` complains about from ``data``; ``False`` if nothing could be."""
    changed = False
    drop_flows: set[int] = set()
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        if not loc:
            return False
        section = str(loc[0])
        value = data.get(section)
        if section in _NAMED and len(loc) > 1:
            if isinstance(value, dict) and value.pop(loc[1], None) is not None:
                getattr(aside, section).add(str(loc[1]))
                changed = True
            continue
        if (section not in _ITEMS and section not in _NAMED) or len(loc) == 1:
            if isinstance(value, dict) and _drop_bad_names(value, getattr(aside, section, set())):
                changed = True
                continue
            # An unknown top-level key, a bad `hub:`, `channels:` not a mapping: dropped, so
            # the defaults stand in; nothing in it is checked further.
            if section in data:
                del data[section]
                changed = True
            aside.sections.add(section)
            continue
        item, setting = loc[1], (str(loc[2]) if len(loc) > 2 else None)
        model = _ITEMS[section]
        if not isinstance(value, dict | list):
            continue
        entry = value[int(item)] if isinstance(value, list) else value.get(item)
        key = aside.flow_positions[int(item)] if section == "flows" else str(item)
        if setting is not None and (section, key, setting) in aside.settings:
            continue  # a second error about a setting already dropped
        field_info = model.model_fields.get(setting or "")
        droppable = field_info is not None and not field_info.is_required()
        if (
            setting is not None
            and isinstance(entry, dict)
            and setting in entry
            and (droppable or setting not in model.model_fields)
        ):
            del entry[setting]
            aside.settings.add((section, key, setting))
            changed = True
        elif section == "flows":
            drop_flows.add(int(item))
        elif isinstance(value, dict) and value.pop(item, None) is not None:
            aside.channels.add(str(item))
            changed = True
    flows = data.get("flows")
    for index in sorted(drop_flows, reverse=True):
        if isinstance(flows, list) and index < len(flows):
            aside.drop_flow(flows, index)
            changed = True
    return changed


def _drop_bad_names(entries: dict[str, Any], removed: set[str]) -> bool:
    """Remove the entries whose names are not valid names; ``True`` if any was."""
    bad = [name for name in entries if not (isinstance(name, str) and _NAME.match(name))]
    for name in bad:
        del entries[name]
        removed.add(str(name))
    return bool(bad)
