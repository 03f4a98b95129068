"""File formats of the file transports (folder, sftp): CSV, JSON, JSONL, XML and IDoc XML
parsed into records (IDoc XML: :mod:`~erpbridge.systems.sap.idoc`).

A bad row becomes a :class:`SourceProblem` and reading goes on; a file that cannot be read as a
whole raises :class:`BrokenFile`. Files are streamed, so memory holds about one record at a time
(JSON, a single document, excepted).
"""

from __future__ import annotations

import codecs
import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from pathlib import PurePath
from typing import IO, Any, Literal

import orjson

from erpbridge.jsondepth import MAX_JSON_DEPTH, nests_deeper
from erpbridge.transports import xmlguard
from erpbridge.transports.base import SourceProblem, SourceRecord

__all__ = ["BrokenFile", "Format", "Item", "Opener", "read_items", "xml_events"]

Format = Literal["csv", "json", "jsonl", "xml", "idoc"]
Item = SourceRecord | SourceProblem
_FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xml": "xml",
}
_CHUNK = 64 * 1024


class BrokenFile(Exception):
    """The file as a whole cannot be read; it goes to ``error/``."""


#: Opens one file for reading, streamed: a local file, a remote one.
Opener = Callable[[], AbstractContextManager[IO[bytes]]]


def read_items(
    name: str,
    open_file: Opener,
    fmt: Format | None,
    *,
    encoding: str,
    delimiter: str,
    record_tag: str | None,
    records_path: str | None,
    required: frozenset[str],
) -> Generator[Item, None, None]:
    """Records and row problems of the file ``name`` that ``open_file`` opens; ``fmt`` ``None``
    guesses the format from the extension.

    ``encoding`` applies to CSV, JSON and JSONL (XML declares its own); a UTF-8 BOM is skipped.
    IDoc files are read by :func:`erpbridge.systems.sap.idoc.read_idocs`, which builds on this
    module (``BrokenFile``, ``xml_events``): the folder transport picks it for ``idoc``.
    """
    suffix = PurePath(name).suffix
    fmt = fmt or _FORMAT_BY_SUFFIX.get(suffix.lower())
    text_encoding = _text_encoding(encoding)
    try:
        if fmt == "csv":
            with open_file() as fb, io.TextIOWrapper(fb, text_encoding, newline="") as fh:
                yield from _csv_items(fh, name, delimiter, required)
        elif fmt == "jsonl":
            with open_file() as fb, io.TextIOWrapper(fb, text_encoding) as fh:
                yield from _jsonl_items(fh, name)
        elif fmt == "json":
            # One document: bounded by max_file_mb, which the caller checked before.
            with open_file() as fb:
                text = fb.read().decode(text_encoding)
            yield from _json_items(text, name, records_path)
        elif fmt == "xml":
            with open_file() as fb:
                yield from _xml_items(fb, name, record_tag)
        else:
            raise BrokenFile(
                f"unknown format for extension {suffix!r}; set the flow's source.format"
            )
    except UnicodeDecodeError as exc:
        raise BrokenFile(f"cannot decode as {encoding}: {exc}") from exc
    except csv.Error as exc:
        raise BrokenFile(f"CSV error: {exc}") from exc


def _csv_items(fh: IO[str], name: str, delimiter: str, required: frozenset[str]) -> Iterator[Item]:
    reader = csv.reader(fh, delimiter=delimiter)
    header = next(reader, [])
    missing = sorted(required.difference(header))
    if missing:
        lacking = ", ".join(repr(m) for m in missing)
        raise BrokenFile(f"header lacks column(s) {lacking}; found: {', '.join(header)}")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise BrokenFile(f"header repeats column(s) {', '.join(repr(r) for r in repeated)}")
    last_line = reader.line_num
    for row in reader:
        # A quoted field may span lines; the row's position is the line it starts on.
        line, last_line = last_line + 1, reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            yield SourceProblem(
                position=f"{name}:{line}",
                reason=f"row has {len(row)} cell(s), the header has {len(header)}",
                payload={"_raw": row},
            )
            continue
        yield SourceRecord(data=dict(zip(header, row, strict=True)), position=f"{name}:{line}")


def _jsonl_items(fh: IO[str], name: str) -> Iterator[Item]:
    for number, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        position = f"{name}:{number}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield SourceProblem(position, f"invalid JSON: {exc}", payload={"_raw": line.rstrip()})
            continue
        if nests_deeper(value):
            # The raw line is not kept: it is exactly what the later steps cannot handle.
            yield SourceProblem(position, _TOO_DEEP, payload={})
            continue
        yield _json_record(value, position)


def _json_items(text: str, name: str, records_path: str | None) -> Iterator[Item]:
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BrokenFile(f"invalid JSON: {exc}") from exc
    if nests_deeper(value):
        raise BrokenFile(_TOO_DEEP)
    if records_path:
        walked: list[str] = []
        for key in records_path.split("."):
            if not isinstance(value, dict) or key not in value:
                where = ".".join(walked) or "the top level"
                raise BrokenFile(f"records_path {records_path!r}: no key {key!r} at {where}")
            value = value[key]
            walked.append(key)
    if isinstance(value, dict):
        yield _json_record(value, name)
    elif isinstance(value, list):
        for index, element in enumerate(value):
            yield _json_record(element, f"{name}[{index}]")
    else:
        raise BrokenFile(f"expected an array or an object of records, found {_json_type(value)}")


_TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} levels deep (the limit): refused"


def _json_record(value: Any, position: str) -> Item:
    if isinstance(value, dict):
        return SourceRecord(data=value, position=position)
    return SourceProblem(
        position, f"a record must be an object, found {_json_type(value)}", payload={"_raw": value}
    )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), "a number")


def xml_events(fb: IO[bytes]) -> Iterator[tuple[str, ET.Element]]:
    """The ``start``/``end`` events of an XML file, parsed by :mod:`~.xmlguard` (DOCTYPE and
    entities refused, depth bounded); anything it refuses or cannot parse is :class:`BrokenFile`."""
    try:
        yield from xmlguard.iterparse(fb)
    except xmlguard.XmlRefused as exc:
        raise BrokenFile(str(exc)) from None
    except ET.ParseError as exc:
        raise BrokenFile(f"XML syntax error: {exc}") from exc


def _xml_items(fb: IO[bytes], name: str, record_tag: str | None) -> Iterator[Item]:
    """Records of an XML document: the root's children, or the elements named ``record_tag``."""
    # Open elements, root first. Elements end up detached from their parent once done, so
    # memory holds one record and its ancestors, whatever the file size.
    stack: list[ET.Element] = []
    record_depth: int | None = None
    index = 0
    for event, elem in xml_events(fb):
        if event == "start":
            stack.append(elem)
            is_record = _local(elem.tag) == record_tag if record_tag else len(stack) == 2
            if record_depth is None and is_record:
                record_depth = len(stack)
            continue
        depth = len(stack)
        stack.pop()
        if record_depth is not None and depth > record_depth:
            continue  # part of the record being read: kept until the record ends
        if depth == record_depth:
            # ElementTree keeps no line numbers, so the position is the record's index.
            yield SourceRecord(data=_element_dict(elem), position=f"{name}[{index}]")
            index += 1
            record_depth = None
        elem.clear()
        if stack:
            stack[-1].remove(elem)


def _element_dict(elem: ET.Element) -> dict[str, Any]:
    """Attributes as ``@name``, children by tag (repeated → list), text as ``#text``."""
    data: dict[str, Any] = {f"@{_local(k)}": v for k, v in elem.attrib.items()}
    for child in elem:
        key = _local(child.tag)
        value = _element_value(child)
        if key not in data:
            data[key] = value
        elif isinstance(data[key], list):
            data[key].append(value)
        else:
            data[key] = [data[key], value]
    text = (elem.text or "").strip()
    if text:
        data["#text"] = text
    return data


def _element_value(elem: ET.Element) -> Any:
    if not elem.attrib and len(elem) == 0:
        return (elem.text or "").strip()
    return _element_dict(elem)


def _local(tag: str) -> str:
    """``{namespace}Tag`` → ``Tag``."""
    return tag.rpartition("}")[2]


def _text_encoding(encoding: str) -> str:
    # "utf-8-sig" reads plain UTF-8 too and drops a BOM that Excel likes to write.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
