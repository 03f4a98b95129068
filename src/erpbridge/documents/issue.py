"""Issue a document: once per (record version, template), numbered and stored in one transaction.

The number is taken, the template rendered and the bytes inserted in the same transaction. A
template that fails rolls the number back; a crash (kill -9) before the commit leaves neither
number nor document; two workers issuing the same document at once meet on the unique
(record, version, template) row, and the loser's transaction — its number with it — is rolled
back before it reads the winner's. Every later delivery, retry or re-send reads the stored bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from erpbridge.documents.render import CompiledDocument, Numbered
from erpbridge.store.database import READ_ONLY
from erpbridge.store.documents import (
    DocumentRef,
    StoredDocument,
    find_document,
    insert_document,
    take_number,
)
from erpbridge.store.runs import now

__all__ = ["document_context", "issue"]


def document_context(
    doc: CompiledDocument,
    ref: DocumentRef,
    payload: Mapping[str, Any],
    issued_at: datetime,
    numbered: Numbered | None,
) -> dict[str, Any]:
    """What a template sees: ``record`` (the version's fields), ``entity``, ``key``,
    ``version`` and ``document`` (``name``, ``number``, ``sequence``, ``year``, ``seq``,
    ``issued_at``, ``issued_on``)."""
    return {
        "record": payload,
        "entity": ref.entity,
        "key": ref.key,
        "version": ref.version,
        "document": {
            "name": doc.name,
            "number": numbered.number if numbered else None,
            "sequence": numbered.sequence if numbered else None,
            "year": numbered.year if numbered else issued_at.year,
            "seq": numbered.seq if numbered else None,
            "issued_at": issued_at,
            "issued_on": issued_at.date().isoformat(),
        },
    }


def issue(
    engine: Engine,
    doc: CompiledDocument,
    ref: DocumentRef,
    payload: Mapping[str, Any],
    lead: CompiledDocument | None = None,
) -> StoredDocument:
    """The stored document of ``doc`` for ``ref``: the one issued before, or a new one.

    ``lead``: the document ``doc``'s ``number_of`` names; it is issued first (or found) and
    ``doc`` carries its number without taking one. Raises
    :class:`~erpbridge.documents.render.DocumentError` when the template cannot make it
    (nothing is stored and no number is taken).
    """
    with engine.connect() as conn:
        found = find_document(
            conn.execution_options(**{READ_ONLY: True}), ref.template, ref.record_id, ref.version
        )
    if found is not None:
        return found
    shared: Numbered | None = None
    if lead is not None:
        first = issue(engine, lead, replace(ref, template=lead.name), payload)
        assert first.number is not None and first.year is not None and first.seq is not None
        shared = Numbered(first.number, first.sequence or "", first.year, first.seq)
    try:
        with engine.begin() as conn:
            found = find_document(conn, ref.template, ref.record_id, ref.version)
            if found is not None:
                return found
            issued_at = now()
            numbered = shared
            numbering = doc.spec.numbering
            if numbering is not None:
                seq = take_number(conn, numbering.sequence, issued_at.year)
                numbered = doc.number(issued_at.year, seq)
            context = document_context(doc, ref, payload, issued_at, numbered)
            reference = numbered.number if numbered else f"{ref.record_id}V{ref.version}"
            content = doc.render(context, issued_at, reference)
            number = numbered.number if numbered else None
            return insert_document(
                conn,
                ref,
                number=number,
                # A shared number stays the lead's: only the lead's row holds the sequence.
                sequence=numbered.sequence if numbered and not shared else None,
                year=numbered.year if numbered and not shared else None,
                seq=numbered.seq if numbered and not shared else None,
                file_name=doc.file_name(ref.entity, ref.key, ref.version, number),
                media_type=doc.media_type,
                content=content,
                issued_at=issued_at,
            )
    except IntegrityError:
        # Another worker issued it first; our number went back with our transaction.
        with engine.connect() as conn:
            found = find_document(conn, ref.template, ref.record_id, ref.version)
        if found is None:
            raise
        return found
