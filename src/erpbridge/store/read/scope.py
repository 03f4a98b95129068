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

__all__ = ["EVERYTHING", "VISIBLE_RECORD_SQL", "Scope"]

#: The condition "record ``{id}`` is visible", in SQL: one spelling, used by the Core queries and
#: by the hand-written search SQL. ``:scope_channels`` is an expanding parameter.
VISIBLE_RECORD_SQL = (
    "(EXISTS (SELECT 1 FROM bindings WHERE bindings.record_id = {id} "
    "AND bindings.channel IN :scope_channels) "
    "OR EXISTS (SELECT 1 FROM audit WHERE audit.record_id = {id} "
    "AND audit.channel IN :scope_channels) "
    "OR EXISTS (SELECT 1 FROM deliveries WHERE deliveries.record_id = {id} "
    "AND deliveries.channel IN :scope_channels))"
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

    def record_condition(self, record_id: str) -> TextClause | None:
        """ "The record whose id is the SQL expression ``record_id`` is visible", or ``None``."""
        if self.channels is None:
            return None
        return text(VISIBLE_RECORD_SQL.format(id=record_id)).bindparams(self.channels_param())


#: The scope of a reader who sees everything.
EVERYTHING = Scope()
