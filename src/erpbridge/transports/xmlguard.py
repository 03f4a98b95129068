"""The one way the hub parses XML it is handed: files (XML, IDoc), OData ``$metadata``, XML-RPC.

Parsing goes through defusedxml with ``forbid_dtd``: a document that declares a DOCTYPE (hence
any entity, internal or external: billion laughs, ``SYSTEM "file:///…"``) is refused before any
of it expands, whatever its encoding (the check is expat's, not a byte search). A document nested
deeper than :data:`MAX_DEPTH` elements is refused too: the records built from it would be nested
as deep, and the code that walks them (mapping, JSON encoding) would hit Python's recursion
limit or orjson's depth limit (255). Both refusals raise :class:`XmlRefused`, a ``ValueError``.

SOAP is not parsed here: zeep parses with lxml, whose own guards the transport switches on
(``forbid_dtd``, ``forbid_entities``; libxml2 bounds the depth at 256).
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterator
from typing import IO, Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from defusedxml.xmlrpc import DefusedExpatParser

__all__ = ["MAX_DEPTH", "XmlRefused", "fromstring", "iterparse", "xmlrpc_values"]

#: The deepest element nesting accepted (the root is level 1).
MAX_DEPTH = 100
REFUSED_DTD = "DOCTYPE/entity declarations are not accepted"


class XmlRefused(ValueError):
    """The document declares a DOCTYPE/entities, or is nested deeper than :data:`MAX_DEPTH`."""


def _too_deep() -> XmlRefused:
    return XmlRefused(f"XML nested more than {MAX_DEPTH} elements deep (the limit): refused")


def iterparse(source: IO[bytes]) -> Iterator[tuple[str, Element]]:
    """``("start" | "end", element)`` events of a streamed document (ElementTree's iterparse).

    Raises :class:`XmlRefused` (DOCTYPE, depth) and ``xml.etree.ElementTree.ParseError``.
    """
    depth = 0
    try:
        for event, element in SafeET.iterparse(source, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep()
            else:
                depth -= 1
            yield event, element
    except DefusedXmlException:
        raise XmlRefused(REFUSED_DTD) from None


def fromstring(content: bytes) -> Element:
    """The root element of a whole document held in memory (any encoding it declares).

    Raises :class:`XmlRefused` (DOCTYPE, depth) and ``xml.etree.ElementTree.ParseError``.
    """
    try:
        root = SafeET.fromstring(content, forbid_dtd=True)
    except DefusedXmlException:
        raise XmlRefused(REFUSED_DTD) from None
    # Walked without recursion: the tree was built by expat and may be of any depth.
    level: list[tuple[Element, int]] = [(root, 1)]
    while level:
        element, depth = level.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        level.extend((child, depth + 1) for child in element)
    return root


class _BoundedUnmarshaller(xmlrpc.client.Unmarshaller):
    """xmlrpc's unmarshaller, refusing elements nested deeper than :data:`MAX_DEPTH`."""

    def __init__(self) -> None:
        super().__init__(use_datetime=False, use_builtin_types=True)
        self.depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _too_deep()
        super().start(tag, attrs)

    def end(self, tag: str) -> None:
        self.depth -= 1
        super().end(tag)


def xmlrpc_values(body: bytes) -> tuple[Any, ...]:
    """The values of an XML-RPC ``methodResponse`` (``xmlrpc.client``'s unmarshaller).

    Raises :class:`XmlRefused` (DOCTYPE, depth), ``xmlrpc.client.Fault`` for a ``<fault>``,
    and ``xml.parsers.expat.ExpatError`` / ``xmlrpc.client.ResponseError`` when malformed.
    """
    target = _BoundedUnmarshaller()
    parser = DefusedExpatParser(target, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
    except DefusedXmlException:
        raise XmlRefused(REFUSED_DTD) from None
    return target.close()
