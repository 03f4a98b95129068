"""``GET /api/v1/search/{entity}``: the search help over the master data kept in the hub."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Engine

from erpbridge.api.auth import Principal, require
from erpbridge.api.context import ApiError, Hub, get_engine, get_hub
from erpbridge.api.scope import read_scope
from erpbridge.pci import redact_card_numbers
from erpbridge.store.database import READ_ONLY
from erpbridge.store.search import MAX_LIMIT, MatchKind, SearchSpec, search, searchable

__all__ = ["SearchHitOut", "SearchOut", "router"]

router = APIRouter(prefix="/api/v1/search", tags=["search"])
# Route group "search": ``hub.api.rate_limits.per_route.search`` limits it apart from the rest.
Reader = Annotated[Principal, Depends(require("read", "search"))]


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("the query is blank")
    return value


class SearchHitOut(BaseModel):
    """One record found."""

    entity: str
    key: str = Field(description="The record's business key.")
    version: int = Field(description="The record's current version.")
    label: str = Field(description="What to show for it: its name, or its first search field.")
    match: MatchKind = Field(
        description="How it matched, best first: the exact key; key or label starting with the "
        "query; every word starting a word of the record; a substring."
    )
    matched: list[str] = Field(description="The search fields holding a word of the query.")


class SearchOut(BaseModel):
    """The hits of one query, best first, and the time the look-up took in the hub."""

    entity: str
    query: str
    hits: list[SearchHitOut]
    took_ms: float


@router.get(
    "/{entity}",
    summary="Search help: find records by prefix or substring",
    responses={
        404: {"description": "no such entity, or it has no search help"},
        422: {"description": "q is missing, blank or too long, or limit is out of range"},
    },
)
def search_records(
    entity: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")],
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="Words that must all occur in the record (any case, accents optional); "
            "with fewer than 3 characters: a prefix of the key or the label.",
        ),
        AfterValidator(_has_text),
    ],
    who: Reader,
    hub: Annotated[Hub, Depends(get_hub)],
    engine: Annotated[Engine, Depends(get_engine)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most hits returned.")] = 20,
) -> SearchOut:
    """Records of ``entity`` matching every word of ``q``: exact key, prefix, word, substring
    (for a channel-restricted client: only records of its channels)."""
    entities = hub.config.entities
    spec = SearchSpec.of(entity, entities[entity]) if entity in entities else None
    if spec is None:
        names = ", ".join(sorted(searchable(entities))) or "none"
        raise ApiError(
            404, "not_searchable", f"entity {entity!r} has no search help (searchable: {names})"
        )
    began = time.perf_counter()
    with engine.connect() as conn:
        reading = conn.execution_options(**{READ_ONLY: True})
        hits = search(reading, spec, q, limit, read_scope(hub, who))
    took_ms = (time.perf_counter() - began) * 1000
    return SearchOut(
        entity=entity,
        query=redact_card_numbers(q),  # the answer never echoes a card number
        hits=[
            SearchHitOut(
                entity=h.entity,
                key=h.key,
                version=h.version,
                label=h.label,
                match=h.match,
                matched=list(h.matched),
            )
            for h in hits
        ],
        took_ms=round(took_ms, 3),
    )
