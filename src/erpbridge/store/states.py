"""The states the hub stores, as one typed vocabulary: deliveries, runs, rejections, conflicts.

Each is a ``Literal`` (for the API's parameters and answers, and mypy) and the tuple of its
values in lifecycle order (for SQL ``IN``, the CLI's help and its errors). Nothing else spells
a state list; code that needs a subset names it here.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CONFLICT_STATUSES",
    "DELIVERY_STATES",
    "OPEN_DELIVERY_STATES",
    "REJECTION_STATUSES",
    "RUN_STATUSES",
    "TOMBSTONE_HASH",
    "ConflictStatus",
    "DeliveryState",
    "RejectionStatus",
    "RunStatus",
    "is_deleted",
]

#: A delivery's state. ``failed`` waits for a retry; ``held`` waits for a person (an open
#: two-way conflict); ``dead`` and ``cancelled`` wait for ``retry``.
DeliveryState = Literal["pending", "in_flight", "failed", "held", "delivered", "dead", "cancelled"]
DELIVERY_STATES: tuple[DeliveryState, ...] = get_args(DeliveryState)

#: States a delivery is still on its way in; the head of an ordering key is one of these.
OPEN_DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "failed", "in_flight", "held")

#: A run's status. ``interrupted``: its process went away (killed, or stopped gracefully between
#: two batches); a ``running`` run past its lease is shown and filtered as ``interrupted``.
RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)

#: A rejected record's status: still ``open``, mapped by a replay, replaced by a newer read, or
#: ``dismissed`` by an operator with a reason.
RejectionStatus = Literal["open", "replayed", "superseded", "dismissed"]
REJECTION_STATUSES: tuple[RejectionStatus, ...] = get_args(RejectionStatus)

#: A two-way conflict's status.
ConflictStatus = Literal["open", "resolved"]
CONFLICT_STATUSES: tuple[ConflictStatus, ...] = get_args(ConflictStatus)


#: The content hash of a deleted record's version (a tombstone, ``store.tombstones``): that of JSON
#: ``null`` (``content_hash(dump_payload(None))``), which no payload (always an object) has, so any
#: incoming record differs from it and recreates the record.
TOMBSTONE_HASH = "941dffce4e4308ceb33e87326003257d"


def is_deleted(content_hash: str) -> bool:
    """Whether a stored version with this content hash is a tombstone."""
    return content_hash == TOMBSTONE_HASH
