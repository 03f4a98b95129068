"""What the streaming transports (``amqp``, ``nats``) share: a message body as a record or a
problem, an outgoing record as a message, and the message ids a run has already committed.

A message carries one record as a JSON object. A body that is not JSON, or JSON that is not an
object, is a :class:`SourceProblem` (stored as a rejection with the body) and is acknowledged
with its batch like any other message: it is dead-lettered into the hub's rejections, never
redelivered for ever and never dropped unseen.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from erpbridge.transports.base import Batch, OutgoingRecord, SourceProblem, SourceRecord

__all__ = [
    "WRITE_PLACEHOLDERS",
    "Incoming",
    "Seen",
    "batch_of",
    "body_of",
    "decode",
    "message_id_of",
    "outgoing_values",
    "seen_ids",
]

#: The placeholders of an OUT flow's templates (routing key, subject, headers).
WRITE_PLACEHOLDERS = frozenset(
    {"record", "key", "version", "entity", "delivery_id", "idempotency_key"}
)

#: How much of a body that is not a record a rejection keeps.
_BODY_KEPT = 2000


def outgoing_values(record: OutgoingRecord) -> dict[str, Any]:
    """The values an OUT flow's templates see for ``record`` (:data:`WRITE_PLACEHOLDERS`)."""
    return {
        "record": dict(record.data),
        "key": record.key,
        "version": record.version,
        "entity": record.entity,
        "delivery_id": record.delivery_id,
        "idempotency_key": record.idempotency_key,
    }


def body_of(record: OutgoingRecord) -> bytes:
    """The message body of ``record``: its data as a JSON object (dates as ISO text)."""
    return orjson.dumps(dict(record.data), default=str)


def message_id_of(message_id: str | None, body: bytes) -> str:
    """The id a message is de-duplicated by: its own, else a digest of its body (a message
    sent twice without an id is the same message twice)."""
    if message_id:
        return message_id
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def decode(body: bytes, position: str, about: Mapping[str, Any]) -> SourceRecord | SourceProblem:
    """``body`` as a record, or the problem that stops it being one (``about``: the message's
    id, subject or routing key, kept with the rejection)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = f"the message is not JSON ({exc})"
    else:
        if isinstance(data, dict):
            return SourceRecord(data, position)
        reason = (
            f"the message is JSON but not an object (a {_kind(data)}); one record is one object"
        )
    text = body[:_BODY_KEPT].decode("utf-8", errors="replace")
    return SourceProblem(position, reason, payload={**about, "body": text})


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as a streaming transport got it: its de-duplication id, its place, its
    body and what a rejection keeps about it (subject, routing key, …)."""

    message_id: str
    position: str
    body: bytes
    about: Mapping[str, Any]


def batch_of(messages: Iterable[Incoming], seen: Seen, source: str) -> Batch:
    """The batch of ``messages`` from ``source`` (``queue Q``, ``stream S``): records and
    problems, the ids in ``seen`` skipped (and counted in a warning), the others remembered in
    the cursor it carries."""
    records: list[SourceRecord] = []
    problems: list[SourceProblem] = []
    committed: list[str] = []
    skipped = 0
    for message in messages:
        if message.message_id in seen:
            skipped += 1
            continue
        committed.append(message.message_id)
        decoded = decode(message.body, message.position, message.about)
        if isinstance(decoded, SourceRecord):
            records.append(decoded)
        else:
            problems.append(decoded)
    seen.add(committed)
    batch = Batch(records, cursor={"seen": seen.ids()}, problems=problems)
    if skipped:
        batch.warnings.append(
            f"{skipped} redelivered message(s) of {source} were committed already (their "
            "acknowledgement was lost): skipped"
        )
    return batch


def seen_ids(cursor: Any) -> list[str]:
    """The ids a flow's cursor (``{"seen": [...]}``) remembers; none for any other cursor."""
    if isinstance(cursor, dict) and isinstance(cursor.get("seen"), list):
        return [str(i) for i in cursor["seen"]]
    return []


class Seen:
    """The ids of the last ``size`` messages committed, oldest first: a message among them is
    a redelivery of one the hub already has (its batch committed, its acknowledgement lost)."""

    def __init__(self, ids: Iterable[str], size: int) -> None:
        self._order: deque[str] = deque(maxlen=size)
        self._ids: set[str] = set()
        self.add(ids)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def add(self, ids: Iterable[str]) -> None:
        """Remember ``ids`` (committed now), forgetting the oldest beyond the size."""
        for message_id in ids:
            if message_id in self._ids:
                continue
            if self._order.maxlen is not None and len(self._order) == self._order.maxlen:
                self._ids.discard(self._order[0])
            self._order.append(message_id)
            self._ids.add(message_id)

    def ids(self) -> list[str]:
        """The remembered ids, oldest first (what the run's cursor keeps)."""
        return list(self._order)
