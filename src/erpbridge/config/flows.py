"""The flow stage: references, triggers, mapping compilation, a flow's source or target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from erpbridge.config.models import ConfigFile, FlowConfig, ScheduleTrigger
from erpbridge.config.problems import Loc, Problems, did_you_mean, hint_of, message_of
from erpbridge.config.reconciliation import ReconcilePlan, check_reconcile
from erpbridge.config.validation import SetAside
from erpbridge.mapping.compiler import (
    CompiledMapping,
    CurrencyRates,
    MappingCompileError,
    compile_mapping,
    compile_outbound,
)
from erpbridge.model.cards import CardAction
from erpbridge.model.entities import EntityCatalog, EntitySpec
from erpbridge.transports import StreamOptions, TransportClass
from erpbridge.transports.base import Deleter, TargetOptions

__all__ = ["FlowChecks", "check_flows"]


@dataclass
class FlowChecks:
    """What checking the flows compiled: mappings, and each flow's source or target options."""

    mappings: dict[str, CompiledMapping] = field(default_factory=dict)
    streams: dict[str, StreamOptions] = field(default_factory=dict)
    targets: dict[str, TargetOptions] = field(default_factory=dict)
    #: Flow name → its ``reconcile:`` block compiled.
    reconcile: dict[str, ReconcilePlan] = field(default_factory=dict)


def check_flows(
    model: ConfigFile,
    catalog: EntityCatalog,
    classes: Mapping[str, TransportClass],
    channel_options: Mapping[str, BaseModel],
    problems: Problems,
    aside: SetAside,
) -> FlowChecks:
    """Check every flow against the channels, entities and transports; compile its mapping."""
    found = FlowChecks()
    rates = CurrencyRates(model.currency_rates.base, model.currency_rates.rates)
    names: set[str] = set()
    placed: list[tuple[Loc, FlowConfig]] = []
    for i, flow in enumerate(model.flows):
        position = aside.flow_positions[i] if i < len(aside.flow_positions) else i
        at: Loc = ("flows", position)
        placed.append((at, flow))
        if flow.name in names:
            problems.add((*at, "name"), f"duplicate flow name {flow.name!r}")
        names.add(flow.name)
        if flow.channel not in model.channels and not aside.channel(flow.channel):
            known = ", ".join(model.channels) or "none"
            hint = did_you_mean(flow.channel, model.channels)
            problems.add(
                (*at, "channel"), f"unknown channel {flow.channel!r}{hint} (channels: {known})"
            )
        if isinstance(flow.trigger, ScheduleTrigger) and not _valid_cron(flow.trigger.schedule):
            problems.add(
                (*at, "trigger", "schedule"),
                f"invalid cron expression {flow.trigger.schedule!r}",
            )
        if not aside.entity(flow.entity):
            mapping_aside = aside.setting("flows", position, "mapping")
            _compile(flow, at, catalog, rates, found, problems, compile_it=not mapping_aside)
        _check_deletes(flow, at, classes.get(flow.channel), problems)
        cls = classes.get(flow.channel)
        if cls is None:
            continue
        if flow.direction == "out":
            if not aside.setting("flows", position, "target"):
                _check_target(flow, at, cls, found.targets, problems)
            # A transport may refuse a target for its channel's options (a platform channel
            # without webhook_url takes no OUT flows): refused here, not at delivery time.
            check = getattr(cls, "check_target", None)
            if check is not None and flow.name in found.targets and flow.channel in channel_options:
                problem = check(
                    flow.channel, channel_options[flow.channel], found.targets[flow.name]
                )
                if problem:
                    problems.add((*at, "channel"), problem)
            continue
        if flow.target:
            problems.add((*at, "target"), "an IN flow reads from a 'source', it has no 'target'")
        if flow.backfill is not None:
            problems.add(
                (*at, "backfill"),
                "an IN flow reads from its channel; 'backfill' fills OUT flows with what the "
                "hub already holds",
            )
        if not aside.setting("flows", position, "source", "cursor"):
            _check_source(flow, at, cls, found.streams, problems)
    found.reconcile = check_reconcile(placed, catalog, classes, found.streams, rates, problems)
    return found


def _check_deletes(
    flow: FlowConfig, at: Loc, cls: TransportClass | None, problems: Problems
) -> None:
    """Delete settings fit the flow's direction, and its channel can do what they ask."""
    if flow.direction == "in":
        if flow.deactivate is not None:
            problems.add((*at, "deactivate"), "an IN flow takes deletes from its channel; "
                         "'deactivate' is what an OUT flow writes for one")  # fmt: skip
        if flow.on_delete != "ignore":
            problems.add((*at, "on_delete"), "an IN flow takes deletes from its channel "
                         "(delete_marker, key_sweep); 'on_delete' is an OUT flow's")  # fmt: skip
        return
    for name in ("delete_marker", "key_sweep"):
        if getattr(flow, name) is not None:
            problems.add((*at, name), f"an OUT flow delivers deletes (on_delete); '{name}' is "
                         "how an IN flow finds them")  # fmt: skip
    if flow.on_delete == "deactivate" and not flow.deactivate:
        problems.add((*at, "deactivate"), "on_delete: deactivate needs the fields to set, "
                     "e.g. deactivate: {active: false}")  # fmt: skip
    if flow.deactivate and flow.on_delete != "deactivate":
        problems.add((*at, "deactivate"), "is used only with on_delete: deactivate")
    if flow.on_delete == "delete" and cls is not None and not _deletes(cls):
        problems.add((*at, "on_delete"), f"channel {flow.channel!r}'s transport cannot delete "
                     "records: use on_delete: deactivate (or ignore)")  # fmt: skip


def _deletes(cls: TransportClass) -> bool:
    """Whether the transport class removes records (:class:`Deleter`)."""
    return isinstance(cls, type) and issubclass(cls, Deleter)


def _valid_cron(expression: str) -> bool:
    # Imported here: croniter runs `file` on the interpreter when imported (platform.architecture).
    from croniter import croniter

    return bool(croniter.is_valid(expression))


def _compile(
    flow: FlowConfig,
    at: Loc,
    catalog: EntityCatalog,
    rates: CurrencyRates,
    found: FlowChecks,
    problems: Problems,
    *,
    compile_it: bool,
) -> None:
    entity = catalog.get(flow.entity)
    if entity is None:
        hint = did_you_mean(flow.entity, catalog)
        problems.add(
            (*at, "entity"),
            f"unknown entity {flow.entity!r}{hint} (entities: {', '.join(catalog)})",
        )
        return
    if flow.direction == "in" and isinstance(flow.card_numbers, dict):
        _check_card_numbers(flow.card_numbers, entity, at, problems)
    if not compile_it:
        return
    try:
        if flow.direction == "out":
            found.mappings[flow.name] = compile_outbound(flow.mapping, rates, flow.card_numbers)
        else:
            found.mappings[flow.name] = compile_mapping(
                flow.mapping, entity, rates, flow.card_numbers
            )
    except MappingCompileError as exc:
        for path, message in exc.problems:
            problems.add(problems.mapping_loc((*at, "mapping"), path), message)


def _check_card_numbers(
    setting: Mapping[str, CardAction], entity: EntitySpec, at: Loc, problems: Problems
) -> None:
    """An IN flow's ``card_numbers`` names fields of its entity, and masks no guarded one."""
    for path, action in setting.items():
        name = path.split(".")[0]
        if path == "*":
            continue
        if name not in entity.fields:
            problems.add((*at, "card_numbers", path), f"{name!r} is not a field of the entity")
        elif action == "mask" and name in entity.card_number_guarded:
            problems.add(
                (*at, "card_numbers", path),
                "a business key or guarded (no_card_numbers) field always rejects a card number",
            )


def _check_source(
    flow: FlowConfig,
    at: Loc,
    cls: TransportClass,
    streams: dict[str, StreamOptions],
    problems: Problems,
) -> None:
    source = dict(flow.source)
    if flow.cursor is not None:
        source["cursor"] = flow.cursor.model_dump()
        cursor = flow.cursor
        _warn_no_window(cursor.safety_window, cursor.column, (*at, "cursor"), problems)
    elif isinstance(source.get("cursor"), dict):
        window, column = source["cursor"].get("safety_window"), source["cursor"].get("column")
        _warn_no_window(window, column, (*at, "source", "cursor"), problems)
    try:
        streams[flow.name] = cls.stream_options.model_validate(source)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where: Loc = (*at, *loc) if loc[:1] == ("cursor",) else (*at, "source", *loc)
            problems.add(where, message_of(err), hint_of(err, cls.stream_options, loc))


def _warn_no_window(window: Any, column: Any, at: Loc, problems: Problems) -> None:
    """A cursor set to re-read nothing loses late commits when its column is a date/time."""
    if window == 0:
        problems.warn(
            (*at, "safety_window"),
            f"0 re-reads nothing: if {column} is a date/time column, a row committed after the "
            f"hub read rows with a later {column} is never read (late commits are lost); leave "
            "safety_window out (300 s for date/time columns) or size it to the longest "
            "transaction of the source",
        )


def _check_target(
    flow: FlowConfig,
    at: Loc,
    cls: TransportClass,
    targets: dict[str, TargetOptions],
    problems: Problems,
) -> None:
    for name in ("source", "cursor", "conflict"):
        if getattr(flow, name):
            problems.add((*at, name), f"an OUT flow writes to a 'target', it has no {name!r}")
    options = getattr(cls, "target_options", None)
    if options is None or not hasattr(cls, "write"):
        problems.add((*at, "channel"), f"channel {flow.channel!r} cannot be written to")
        return
    try:
        targets[flow.name] = options.model_validate(flow.target)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.add((*at, "target", *loc), message_of(err), hint_of(err, options, loc))
