"""Pagination for the REST transport: page numbers, offsets, cursors, next links, Link headers.

:func:`pages` walks one list resource page by page and stops by the style's own rule:

- ``page`` / ``offset``: at an empty page, at the ``total`` the API reports (header or body), or
  at a page shorter than the longest one before it. A first short page does not stop the read:
  an API that caps the page size below ``page_size`` would otherwise lose everything after its
  first page. Offsets advance by the records received, not by ``page_size``, for the same reason.
- ``cursor``: while the body holds a next cursor; ``next_url``: while it holds a next URL;
  ``link``: while the RFC 8288 (5988) ``Link`` header has ``rel="next"``.

A page repeated verbatim, or a cursor or link seen before, is a loop (a wrong parameter name
the API ignores) and stops the run instead of reading forever. Next links must stay on the
channel's scheme, host and port: credentials are never sent elsewhere.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from erpbridge.transports.http import HttpRefused
from erpbridge.transports.rest.cursor import dig

__all__ = [
    "CursorPagination",
    "LinkPagination",
    "NextUrlPagination",
    "NoPagination",
    "OffsetPagination",
    "Page",
    "PagePagination",
    "Pagination",
    "json_body",
    "pages",
    "plain_url",
    "records_at",
]


class _Paging(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoPagination(_Paging):
    """One request returns the whole list."""

    type: Literal["none"] = "none"


class PagePagination(_Paging):
    """Numbered pages: ``?page=2&per_page=100``."""

    type: Literal["page"]
    page_param: str = Field(default="page", description="Query parameter of the page number.")
    size_param: str | None = Field(
        default="per_page", description="Query parameter of the page size; null: not sent."
    )
    page_size: int = Field(default=100, ge=1, description="Records asked for per page.")
    first_page: int = Field(default=1, ge=0, description="Number of the first page.")
    total_header: str | None = Field(
        default=None, description="Response header with the total count, e.g. X-Total-Count."
    )
    total_path: str | None = Field(
        default=None, description="Dot path of the total count in the body, e.g. meta.total."
    )


class OffsetPagination(_Paging):
    """Offsets: ``?offset=200&limit=100``."""

    type: Literal["offset"]
    offset_param: str = Field(default="offset", description="Query parameter of the offset.")
    limit_param: str = Field(default="limit", description="Query parameter of the page size.")
    page_size: int = Field(default=100, ge=1, description="Records asked for per page.")
    total_header: str | None = Field(
        default=None, description="Response header with the total count, e.g. X-Total-Count."
    )
    total_path: str | None = Field(
        default=None, description="Dot path of the total count in the body, e.g. meta.total."
    )


class CursorPagination(_Paging):
    """An opaque next cursor in the body, sent back as a query parameter."""

    type: Literal["cursor"]
    cursor_path: str = Field(
        min_length=1, description="Dot path of the next cursor in the body, e.g. meta.next."
    )
    cursor_param: str = Field(default="cursor", description="Query parameter it goes back in.")
    size_param: str | None = Field(default=None, description="Page size parameter, if any.")
    page_size: int = Field(default=100, ge=1, description="Records asked for per page.")


class NextUrlPagination(_Paging):
    """The next page's URL in the body (absolute, or relative to the page's URL)."""

    type: Literal["next_url"]
    next_path: str = Field(
        min_length=1, description="Dot path of the next URL in the body, e.g. links.next."
    )
    size_param: str | None = Field(
        default=None, description="Page size parameter of the first request, if any."
    )
    page_size: int = Field(default=100, ge=1, description="Records asked for per page.")


class LinkPagination(_Paging):
    """The next page's URL in the ``Link: <…>; rel="next"`` header (RFC 8288, was 5988)."""

    type: Literal["link"]
    size_param: str | None = Field(
        default=None, description="Page size parameter of the first request, if any."
    )
    page_size: int = Field(default=100, ge=1, description="Records asked for per page.")


Pagination = Annotated[
    NoPagination
    | PagePagination
    | OffsetPagination
    | CursorPagination
    | NextUrlPagination
    | LinkPagination,
    Field(discriminator="type"),
]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its items as the API sent them, and where they came from."""

    items: list[Any]
    number: int
    url: str
    #: The whole body the items came from (a JSON:API page's ``included`` sits beside them).
    body: Any = None


#: GET ``url`` (relative to the channel, or absolute) with ``params``; returns a 2xx response.
Fetch = Callable[[str, dict[str, Any] | None], httpx.Response]


def plain_url(url: httpx.URL | str) -> str:
    """``url`` without its query (which may carry an API key), for messages and positions."""
    return str(httpx.URL(str(url)).copy_with(query=None, fragment=None))


def json_body(channel: str, response: httpx.Response) -> Any:
    """The response's JSON body; ``HttpRefused`` (protocol) for anything else."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        kind = response.headers.get("Content-Type", "no content type")
        raise HttpRefused(
            f"channel {channel!r}: GET {plain_url(response.request.url)} answered "
            f"HTTP {response.status_code} with a body that is not JSON ({kind}): {exc}",
            response.status_code,
            "protocol",
        ) from exc


def records_at(body: Any, records_path: str) -> list[Any]:
    """The record list at dot ``records_path`` of ``body`` (empty: the body itself).

    ``ValueError`` says what is there instead; ``null`` is an empty list.
    """
    current = body
    walked: list[str] = []
    for key in records_path.split(".") if records_path else []:
        if not isinstance(current, dict):
            where = ".".join(walked) or "the top level"
            raise ValueError(f"records_path {records_path!r}: {where} is not an object")
        if key not in current:
            where = ".".join(walked) or "the top level"
            keys = ", ".join(sorted(map(str, current))[:20]) or "none"
            raise ValueError(f"records_path {records_path!r}: no key {key!r} at {where} "
                             f"(keys: {keys})")  # fmt: skip
        current = current[key]
        walked.append(key)
    if current is None:
        return []
    if not isinstance(current, list):
        where = records_path or "the body"
        raise ValueError(f"{where} is {type(current).__name__}, not a list of records")
    return current


def pages(
    channel: str,
    fetch: Fetch,
    list_path: str,
    params: dict[str, Any],
    paging: Pagination,
    records_path: str,
    origin: httpx.URL,
) -> Iterator[Page]:
    """Yield the pages of ``list_path`` (with ``params`` on the first request) until the end."""
    walker = _Walker(channel, fetch, records_path, origin)
    if isinstance(paging, NoPagination):
        yield walker.get(list_path, params, 1)
    elif isinstance(paging, PagePagination | OffsetPagination):
        yield from walker.numbered(list_path, params, paging)
    else:
        yield from walker.linked(list_path, params, paging)


class _Walker:
    def __init__(self, channel: str, fetch: Fetch, records_path: str, origin: httpx.URL) -> None:
        self.channel, self.fetch, self.records_path, self.origin = (
            channel,
            fetch,
            records_path,
            origin,
        )
        self.response: httpx.Response | None = None
        self.body: Any = None

    def get(self, url: str, params: dict[str, Any] | None, number: int) -> Page:
        response = self.fetch(url, params)
        body = json_body(self.channel, response)
        try:
            items = records_at(body, self.records_path)
        except ValueError as exc:
            raise self._broken(response, str(exc)) from None
        self.response, self.body = response, body
        return Page(items, number, plain_url(response.request.url), body)

    def numbered(
        self, path: str, params: dict[str, Any], paging: PagePagination | OffsetPagination
    ) -> Iterator[Page]:
        seen, longest, previous = 0, 0, b""
        position = paging.first_page if isinstance(paging, PagePagination) else 0
        for number in itertools.count(1):
            if isinstance(paging, PagePagination):
                extra = {paging.page_param: position}
                if paging.size_param:
                    extra[paging.size_param] = paging.page_size
            else:
                extra = {paging.offset_param: position, paging.limit_param: paging.page_size}
            page = self.get(path, {**params, **extra}, number)
            if not page.items:
                return
            fingerprint = hashlib.sha256(orjson.dumps(page.items, default=str)).digest()
            if fingerprint == previous:
                raise self._loop(f"page {number} repeats page {number - 1}")
            previous = fingerprint
            yield page
            seen += len(page.items)
            total = self._total(paging.total_header, paging.total_path)
            if (total is not None and seen >= total) or len(page.items) < longest:
                return
            longest = max(longest, len(page.items))
            position += 1 if isinstance(paging, PagePagination) else len(page.items)

    def linked(
        self,
        path: str,
        params: dict[str, Any],
        paging: CursorPagination | NextUrlPagination | LinkPagination,
    ) -> Iterator[Page]:
        first = dict(params)
        if paging.size_param:
            first[paging.size_param] = paging.page_size
        page = self.get(path, first, 1)
        assert self.response is not None
        visited = {str(self.response.request.url)}
        while True:
            yield page
            assert self.response is not None
            if isinstance(paging, CursorPagination):
                token = dig(self.body, paging.cursor_path)
                if token is None or token == "":
                    return
                key = f"cursor {token}"
                url, query = path, {**first, paging.cursor_param: token}
            else:
                found = (
                    dig(self.body, paging.next_path)
                    if isinstance(paging, NextUrlPagination)
                    else self.response.links.get("next", {}).get("url")
                )
                if found is None or found == "":
                    return
                url, query = self._follow(str(found)), None
                key = url
            if key in visited:
                raise self._loop(f"the next page ({key[:80]}) was read before")
            visited.add(key)
            page = self.get(url, query, page.number + 1)

    def _follow(self, link: str) -> str:
        assert self.response is not None
        target = self.response.request.url.join(link)
        if (target.scheme, target.host, target.port) != (
            self.origin.scheme,
            self.origin.host,
            self.origin.port,
        ):
            raise self._broken(
                self.response,
                f"the next page link leads to {plain_url(target)}, off the channel's "
                f"{self.origin.scheme}://{self.origin.netloc.decode()}; not followed, so that "
                "credentials stay with the channel",
            )
        return str(target)

    def _total(self, header: str | None, path: str | None) -> int | None:
        assert self.response is not None
        value = self.response.headers.get(header) if header else None
        if value is None and path:
            value = dig(self.body, path)
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None

    def _broken(self, response: httpx.Response, problem: str) -> HttpRefused:
        return HttpRefused(
            f"channel {self.channel!r}: GET {plain_url(response.request.url)}: {problem}",
            response.status_code,
            "protocol",
        )

    def _loop(self, problem: str) -> HttpRefused:
        assert self.response is not None
        return self._broken(
            self.response, f"{problem}: the pagination parameters are probably wrong"
        )
