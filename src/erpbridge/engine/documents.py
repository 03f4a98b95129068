"""The worker's side of documents: issue (or find) the document of a delivery's record version
and hand it to the transport, and to the flow's mapping as ``document``."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from erpbridge.documents.issue import issue
from erpbridge.documents.render import CompiledDocument
from erpbridge.store.deliveries import Claim
from erpbridge.store.documents import DocumentRef, StoredDocument
from erpbridge.transports.base import OutgoingDocument

__all__ = ["document_fields", "issue_for_delivery"]


def document_fields(stored: StoredDocument) -> dict[str, Any]:
    """What a flow's mapping sees of the document (``document.number`` …)."""
    return {
        "template": stored.ref.template,
        "number": stored.number,
        "file_name": stored.file_name,
        "media_type": stored.media_type,
        "sha256": stored.sha256,
        "size": len(stored.content),
        "issued_at": stored.issued_at.isoformat(),
        "content_base64": base64.b64encode(stored.content).decode("ascii"),
    }


def issue_for_delivery(
    engine: Engine,
    doc: CompiledDocument,
    item: Claim,
    payload: Mapping[str, Any],
    *,
    lead: CompiledDocument | None = None,
    for_mapping: bool = True,
) -> tuple[dict[str, Any], OutgoingDocument]:
    """The payload (with ``document`` added when ``for_mapping``: a flow's mapping may pick from
    it) and the document to deliver (``lead``: the document whose number it carries); a
    :class:`~erpbridge.documents.render.DocumentError` when it cannot be made.

    A flow without a mapping sends the payload whole, so it gets no ``document`` fields: the
    transport has the document itself, and a hex digest or base64 text passed whole through
    the card-number scan can look like a card number (4 of 2 000 SHA-256 digests hold a
    Luhn-valid run of digits: such a delivery went dead)."""
    ref = DocumentRef(doc.name, item.record_id, item.entity, item.key, item.version)
    stored = issue(engine, doc, ref, payload, lead)
    outgoing = OutgoingDocument(
        template=doc.name,
        number=stored.number,
        file_name=stored.file_name,
        media_type=stored.media_type,
        sha256=stored.sha256,
        content=stored.content,
        issued_at=stored.issued_at,
    )
    if not for_mapping:
        return dict(payload), outgoing
    return {**payload, "document": document_fields(stored)}, outgoing
