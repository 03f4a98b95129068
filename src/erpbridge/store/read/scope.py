"""What a reader may see: every row, or the rows of some channels (an API client's restriction).

A restricted reader sees, in the hub store:

- runs, deliveries, rejected records and conflicts whose ``channel`` is one of its channels
  (the channel the row was written for, so a flow later moved to another channel in the
  configuration keeps its past where it happened);
- a record that is *bound* to one of its channels, or *flowed through* one of them: a version
  of it came in from the channel, or a delivery of it goes out to the channel;
- of such a record, the bindings of its own channels only, and every version's payload, but
  the lineage (run, flow, channel, external id, source position) only of versions that came in
  through its channels; the others say ``withheld``;
- admin audit rows about its channels or their flows, or its own actions (``store.read.audit``).

Every rule is a SQL condition, applied before ``LIMIT``: a page is never short, and a row
outside the scope is indistinguishable from a row that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import BindParameter, ColumnElement, TextClause, bindparam, text

__all__ = ["EVERYTHING", "VISIBLE_RECORD_SQL", "VISIBLE_SET_SQL", "Scope"]

#: Where a record's channels are written down, each table with ``record_id``, ``channel`` and
#: ``entity``: a binding (the channel's id for it), a version that came in from the channel
#: (``audit``), a delivery out to the channel. The record is visible when one names a channel.
_SOURCES = ("bindings", "audit", "deliveries")

#: The condition "record ``{id}`` of entity ``{entity}`` is visible", in SQL, probing each
#: source by record id (bindings through their record index; audit and deliveries through
#: ``(channel, entity, record_id)``); for one record, or candidates of which many are visible.
#: ``:scope_channels`` is an expanding parameter. ``OFFSET 0`` keeps PostgreSQL from turning a
#: probe into a hash of every row of the channel (it did, for a search under ``LIMIT 20``:
#: 20 000 deliveries hashed per keystroke, measured).
VISIBLE_RECORD_SQL = (
    "("
    + " OR ".join(
        f"EXISTS (SELECT 1 FROM {t} WHERE {t}.record_id = {{id}} "
        + ("" if t == "bindings" else f"AND {t}.entity = {{entity}} ")
        + f"AND {t}.channel IN :scope_channels LIMIT 1 OFFSET 0)"
        for t in _SOURCES
    )
    + ")"
)

#: The same rule as the set of visible record ids of entity ``:scope_entity``, read through the
#: sources' ``(channel, entity, record_id)`` indexes: for searches where few records are visible
#: (probing each candidate would wade through the others' records).
VISIBLE_SET_SQL = " UNION ALL ".join(
    f"SELECT record_id FROM {t} WHERE channel IN :scope_channels AND entity = :scope_entity"
    for t in _SOURCES
)


@dataclass(frozen=True, slots=True)
class Scope:
    """The rows a reader may see. ``channels`` ``None``: all of them (the CLI, an admin)."""

    channels: frozenset[str] | None = None
    #: The flows of those channels in the configuration: audit rows name flows, not channels.
    flows: frozenset[str] = frozenset()
    #: Whose own admin actions are always visible to them.
    actor: str | None = None

    @classmethod
    def restricted(
        cls, channels: frozenset[str], flow_channels: Mapping[str, str], actor: str | None
    ) -> Scope:
        """The scope of a reader limited to ``channels``; ``flow_channels`` maps flow to channel."""
        flows = frozenset(f for f, channel in flow_channels.items() if channel in channels)
        return cls(channels, flows, actor)

    @property
    def unrestricted(self) -> bool:
        """True when every row is visible."""
        return self.channels is None

    def sees_channel(self, channel: str | None) -> bool:
        """True when rows of ``channel`` are visible (of no channel: only when unrestricted)."""
        return self.channels is None or channel in self.channels

    def channel_condition(self, column: ColumnElement[str]) -> ColumnElement[bool] | None:
        """``column IN (channels)``, or ``None`` when unrestricted."""
        if self.channels is None:
            return None
        return column.in_(sorted(self.channels))

    def channels_param(self) -> BindParameter[list[str]]:
        """The ``:scope_channels`` parameter of :data:`VISIBLE_RECORD_SQL`."""
        return bindparam("scope_channels", sorted(self.channels or ()), expanding=True)

    def record_condition(self, record_id: str, entity: str) -> TextClause | None:
        """The condition "the record whose id and entity are the SQL expressions ``record_id``
        and ``entity`` is visible", or ``None`` when unrestricted."""
        if self.channels is None:
            return None
        sql = VISIBLE_RECORD_SQL.format(id=record_id, entity=entity)
        return text(sql).bindparams(self.channels_param())


#: The scope of a reader who sees everything.
EVERYTHING = Scope()
