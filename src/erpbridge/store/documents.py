"""Stored documents and their gapless number sequences.

A document is inserted once per (record version, template) and never changed (the database
refuses an UPDATE, migration 0014). Its number is taken by :func:`take_number` inside the same
transaction that inserts it: a transaction that fails (a template error, a crash, a lost race
for the same document) rolls the number back with it, so the numbers of a sequence and year are
exactly 1..n, each on one stored document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from erpbridge.store.tables import document_sequences, documents

__all__ = [
    "DocumentRef",
    "StoredDocument",
    "documents_of",
    "find_document",
    "insert_document",
    "take_number",
]


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """Which document: one template applied to one record version."""

    template: str
    record_id: int
    entity: str
    key: str
    version: int


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document as the hub keeps it: bytes, their SHA-256 and where they came from."""

    id: int
    ref: DocumentRef
    number: str | None
    sequence: str | None
    year: int | None
    seq: int | None
    file_name: str
    media_type: str
    sha256: str
    content: bytes
    issued_at: datetime


def _stored(row: object) -> StoredDocument:
    r = row._mapping  # type: ignore[attr-defined]
    ref = DocumentRef(r["template"], r["record_id"], r["entity"], r["key"], r["version"])
    return StoredDocument(
        id=r["id"],
        ref=ref,
        number=r["number"],
        sequence=r["sequence"],
        year=r["year"],
        seq=r["seq"],
        file_name=r["file_name"],
        media_type=r["media_type"],
        sha256=r["sha256"],
        content=bytes(r["content"]),
        issued_at=r["issued_at"],
    )


def find_document(
    conn: Connection, template: str, record_id: int, version: int
) -> StoredDocument | None:
    """The stored document of ``template`` for that record version, if it was issued."""
    row = conn.execute(
        select(documents).where(
            and_(
                documents.c.record_id == record_id,
                documents.c.version == version,
                documents.c.template == template,
            )
        )
    ).first()
    return None if row is None else _stored(row)


def documents_of(conn: Connection, templates: Iterable[str]) -> list[StoredDocument]:
    """Every stored document of ``templates``, oldest first."""
    query = select(documents).where(documents.c.template.in_(list(templates)))
    return [_stored(row) for row in conn.execute(query.order_by(documents.c.id))]


def take_number(conn: Connection, sequence: str, year: int) -> int:
    """The next number of ``sequence`` in ``year``: 1 for the first; only valid if the caller's
    transaction commits (call it in the transaction that stores the document)."""
    bump = (
        update(document_sequences)
        .where(and_(document_sequences.c.sequence == sequence, document_sequences.c.year == year))
        .values(last=document_sequences.c.last + 1)
        .returning(document_sequences.c.last)
    )
    taken = conn.execute(bump).scalar()
    if taken is not None:
        return int(taken)
    try:
        with conn.begin_nested():  # another transaction may start the same sequence and year
            conn.execute(insert(document_sequences).values(sequence=sequence, year=year, last=1))
        return 1
    except IntegrityError:
        return int(conn.execute(bump).scalar_one())


def insert_document(
    conn: Connection,
    ref: DocumentRef,
    *,
    number: str | None,
    sequence: str | None,
    year: int | None,
    seq: int | None,
    file_name: str,
    media_type: str,
    content: bytes,
    issued_at: datetime,
) -> StoredDocument:
    """Store a new document; :class:`IntegrityError` when that document exists already."""
    sha256 = hashlib.sha256(content).hexdigest()
    values = {
        "template": ref.template,
        "record_id": ref.record_id,
        "entity": ref.entity,
        "key": ref.key,
        "version": ref.version,
        "sequence": sequence,
        "year": year,
        "seq": seq,
        "number": number,
        "file_name": file_name,
        "media_type": media_type,
        "sha256": sha256,
        "size": len(content),
        "content": content,
        "issued_at": issued_at,
    }
    new_id = conn.execute(insert(documents).values(**values).returning(documents.c.id)).scalar_one()
    return StoredDocument(
        id=int(new_id),
        ref=ref,
        number=number,
        sequence=sequence,
        year=year,
        seq=seq,
        file_name=file_name,
        media_type=media_type,
        sha256=sha256,
        content=content,
        issued_at=issued_at,
    )
