"""The flows' ``reconcile:`` blocks checked and compiled into :class:`ReconcilePlan` objects.

The block itself (:class:`~erpbridge.config.reconcile.ReconcileConfig`) is part of the file's
models; this stage needs the entities, the connectors and the mapping compiler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from erpbridge.config.problems import Loc, Problems, hint_of, message_of
from erpbridge.config.reconcile import ReconcileConfig
from erpbridge.mapping.compiler import (
    CompiledMapping,
    CurrencyRates,
    MappingCompileError,
    compile_mapping,
)
from erpbridge.mapping.spec import MappingSpec
from erpbridge.model.cards import CardSetting
from erpbridge.model.entities import EntitySpec
from erpbridge.schedules import Schedule
from erpbridge.transports import StreamOptions, TransportClass

__all__ = ["ReconcilePlan", "check_reconcile"]


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    """A flow's ``reconcile:`` compiled: where to read, how to map, what to compare and sum."""

    flow: str
    entity: str
    #: The channel read for the channel's side.
    channel: str
    stream: StreamOptions
    mapping: CompiledMapping
    fields: tuple[str, ...]
    amounts: tuple[str, ...]
    page_size: int
    schedule: Schedule | None
    #: An IN flow reconciled through its own channel, source and mapping (what a re-read
    #: through the flow can repair).
    own_source: bool = False


class _Flow(Protocol):
    """What the check needs of a flow (a :class:`~erpbridge.config.models.FlowConfig`)."""

    @property
    def name(self) -> str: ...
    @property
    def entity(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def mapping(self) -> MappingSpec | None: ...
    @property
    def card_numbers(self) -> CardSetting: ...
    @property
    def reconcile(self) -> ReconcileConfig | None: ...


def _default_fields(spec: MappingSpec | None, entity: EntitySpec) -> list[str]:
    names = list(entity.fields) if spec is None else [n for n in spec if n in entity.fields]
    return [n for n in names if n not in entity.key]


def check_reconcile(
    flows: Sequence[tuple[Loc, _Flow]],
    entities: Mapping[str, EntitySpec],
    classes: Mapping[str, TransportClass],
    streams: Mapping[str, StreamOptions],
    rates: CurrencyRates,
    problems: Problems,
) -> dict[str, ReconcilePlan]:
    """Compile every flow's ``reconcile:`` block; add a problem for each thing that is wrong.

    ``flows`` holds (place in the file, flow) pairs.
    """
    plans: dict[str, ReconcilePlan] = {}
    for at, flow in flows:
        block = flow.reconcile
        entity = entities.get(flow.entity)
        if block is None or entity is None:
            continue
        where: Loc = (*at, "reconcile")
        channel = block.channel or flow.channel
        cls = classes.get(channel)
        if cls is None:
            if block.channel is not None:
                problems.add((*where, "channel"), f"unknown channel {channel!r}")
            continue
        stream = _stream(flow, block, cls, streams, where, problems)
        spec = block.mapping if block.mapping is not None or flow.direction == "out" else None
        if block.mapping is None and flow.direction == "in":
            spec = flow.mapping
        try:
            mapping = compile_mapping(spec, entity, rates, flow.card_numbers)
        except MappingCompileError as exc:
            for path, message in exc.problems:
                problems.add(problems.mapping_loc((*where, "mapping"), path), message)
            continue
        fields = block.fields or _default_fields(spec, entity)
        ok = True
        for kind, names in (("fields", fields), ("amounts", block.amounts)):
            for i, name in enumerate(names):
                if name not in entity.fields:
                    known = ", ".join(entity.fields)
                    problems.add(
                        (*where, kind, i), f"{flow.entity} has no field {name!r} ({known})"
                    )
                    ok = False
        for i, name in enumerate(block.amounts):
            spec_of = entity.fields.get(name)
            if spec_of is not None and spec_of.type not in ("integer", "decimal"):
                problems.add(
                    (*where, "amounts", i),
                    f"{name!r} is a {spec_of.type} field; amounts are summed, give number fields",
                )
                ok = False
        if block.schedule is not None and not _valid_cron(block.schedule):
            problems.add((*where, "schedule"), f"invalid cron expression {block.schedule!r}")
            ok = False
        if stream is None or not ok:
            continue
        plans[flow.name] = ReconcilePlan(
            flow.name, flow.entity, channel, stream, mapping, tuple(fields),
            tuple(block.amounts), block.page_size, block.timing(),
            own_source=flow.direction == "in" and block.channel in (None, flow.channel)
            and block.source is None and block.mapping is None,
        )  # fmt: skip
    return plans


def _stream(
    flow: _Flow,
    block: ReconcileConfig,
    cls: TransportClass,
    streams: Mapping[str, StreamOptions],
    where: Loc,
    problems: Problems,
) -> StreamOptions | None:
    if block.source is None:
        if flow.direction == "in" and block.channel is None:
            return streams.get(flow.name)
        problems.add(
            (*where, "source"),
            "give the stream options that read the channel's side (an OUT flow's `target` "
            "cannot be read back)"
            if flow.direction == "out"
            else "give the stream options of the reconcile channel",
        )
        return None
    source = {k: v for k, v in block.source.items() if k != "cursor"}
    try:
        return cls.stream_options.model_validate(source)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.add(
                (*where, "source", *loc), message_of(err), hint_of(err, cls.stream_options, loc)
            )
        return None


def _valid_cron(expression: str) -> bool:
    from croniter import croniter  # imported on use: its import runs `file` (see config.flows)

    return bool(croniter.is_valid(expression))
