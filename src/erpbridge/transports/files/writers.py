"""The write side of the folder transport: records rendered as CSV, JSON, JSONL or XML files.

Rendering happens in memory before anything touches the disk, so a value that cannot be written
fails the call without leaving a file; :func:`write_atomically` then puts each file in place
through a hidden temporary name, so readers never see a partial file. The same records always
render to the same bytes, which makes writing a record version twice harmless.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import secrets
import string
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.files.formats import Format

__all__ = [
    "NAME_PLACEHOLDERS",
    "TEMP_NAME",
    "Unwritable",
    "fill_name",
    "part_name",
    "probe_name",
    "render_batch",
    "render_record",
    "safe_name_part",
    "sync_folder",
    "temp_name",
    "template_placeholders",
    "write_all_atomically",
    "write_atomically",
]

#: What a file name template may use; ``{ext}`` is the format.
NAME_PLACEHOLDERS = frozenset({"entity", "key", "version", "delivery_id", "timestamp", "ext"})

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
# An XML name without a namespace prefix (letters, digits, '_', '.', '-'; not a digit first).
_XML_NAME = re.compile(r"[^\W\d][\w.-]*")
# Characters XML 1.0 cannot carry at all, not even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Unwritable(Exception):
    """A record holds something the format cannot carry; the whole write is refused.

    ``index`` is the record's place in the rendered list (``None``: no single record, as for a
    CSV header), ``field`` the path inside it.
    """

    def __init__(self, index: int | None, field: str, reason: str) -> None:
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(f"field {field!r}: {reason}" if field else reason)


# -- file names ------------------------------------------------------------------------------


def template_placeholders(template: str) -> set[str]:
    """The placeholders ``template`` uses; ``ValueError`` for anything but a plain file name."""
    if "/" in template or "\\" in template or ".." in template:
        raise ValueError("must be a file name, without path separators or '..'")
    if not template or template.startswith("."):
        raise ValueError("must be a non-empty file name that does not start with '.'")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc} (write a literal brace as '{{{{' or '}}}}')") from None
    used = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in NAME_PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in sorted(NAME_PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}}; known: {known}")
        # A format spec could pad with any character, a separator included.
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        used.add(name)
    return used


def fill_name(template: str, record: OutgoingRecord, stamp: str, ext: str) -> str:
    """A checked ``template`` filled in for ``record`` (a batch file's first record)."""
    return template.format(
        entity=safe_name_part(record.entity),
        key=safe_name_part(record.key),
        version=str(record.version),
        delivery_id=str(record.delivery_id),
        timestamp=stamp,
        ext=ext,
    )


def safe_name_part(value: str) -> str:
    """``value`` fit for a file name: anything outside ``[A-Za-z0-9._-]`` becomes ``_``.

    A leading dot becomes ``_`` too, so a key never makes a hidden file or ``..``.
    """
    safe = _UNSAFE_NAME_CHARS.sub("_", value)
    return "_" + safe[1:] if safe.startswith(".") else safe


# -- rendering -------------------------------------------------------------------------------


def render_record(
    fmt: Format,
    data: Mapping[str, Any],
    *,
    encoding: str,
    delimiter: str,
    root_tag: str,
    record_tag: str,
) -> bytes:
    """One record as a whole file: a JSON object, one JSONL line, one CSV row, one XML record."""
    if fmt == "json":
        return _encode(encoding, [(0, _json_text(0, data, orjson.OPT_INDENT_2) + "\n")])
    return render_batch(
        fmt,
        [data],
        encoding=encoding,
        delimiter=delimiter,
        root_tag=root_tag,
        record_tag=record_tag,
    )


def render_batch(
    fmt: Format,
    records: list[Mapping[str, Any]],
    *,
    encoding: str,
    delimiter: str,
    root_tag: str,
    record_tag: str,
) -> bytes:
    """Records as one file: a JSON array, JSONL lines, CSV rows under one header, XML records."""
    if fmt == "json":
        return _encode(encoding, _json_array_chunks(records))
    if fmt == "jsonl":
        return _encode(encoding, ((i, _json_text(i, r) + "\n") for i, r in enumerate(records)))
    if fmt == "csv":
        return _encode(encoding, _csv_chunks(records, delimiter))
    return _xml(records, encoding, root_tag, record_tag)


#: Text of a file in pieces, each with the index of the record it holds (``None``: framing).
_Chunks = Iterable[tuple[int | None, str]]


def _encode(encoding: str, chunks: _Chunks) -> bytes:
    """The chunks encoded as one text; a character the encoding lacks is :class:`Unwritable`
    for the record whose chunk holds it."""
    # Incremental, so that an encoding with a BOM (utf-16) writes it once, not per chunk.
    encoder = codecs.getincrementalencoder(encoding)()
    out = bytearray()
    for index, chunk in chunks:
        try:
            out += encoder.encode(chunk)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise Unwritable(index, "", f"{bad!r} cannot be encoded as {encoding}") from None
    out += encoder.encode("", final=True)
    return bytes(out)


def _json_text(index: int, data: Mapping[str, Any], option: int = 0) -> str:
    try:
        return orjson.dumps(_writable(data, index, ""), option=option).decode()
    except orjson.JSONEncodeError as exc:  # integers beyond 64 bits, mostly
        raise Unwritable(index, "", f"cannot be written as JSON: {exc}") from None


def _json_array_chunks(records: list[Mapping[str, Any]]) -> _Chunks:
    yield None, "["
    for index, data in enumerate(records):
        # Indented one level as array elements; JSON strings hold no raw newline to upset this.
        text = _json_text(index, data, orjson.OPT_INDENT_2).replace("\n", "\n  ")
        yield index, ("\n  " if index == 0 else ",\n  ") + text
    yield None, "\n]\n"


def _csv_chunks(records: list[Mapping[str, Any]], delimiter: str) -> _Chunks:
    rows = [_writable(data, index, "") for index, data in enumerate(records)]
    header = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)

    def taken() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield None, taken()
    for index, row in enumerate(rows):
        writer.writerow([_cell(row.get(column)) for column in header])
        yield index, taken()


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return _text(value)


def _xml(records: list[Mapping[str, Any]], encoding: str, root_tag: str, record_tag: str) -> bytes:
    root = ET.Element(root_tag)
    for index, data in enumerate(records):
        _fill(ET.SubElement(root, record_tag), _writable(data, index, ""), index, "")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    document = f"<?xml version='1.0' encoding='{encoding}'?>\n{body}\n"
    # ElementTree's own choice for characters the encoding lacks: character references.
    return document.encode(encoding, "xmlcharrefreplace")


def _fill(elem: ET.Element, data: dict[str, Any], index: int, path: str) -> None:
    """Children per key, a list as repeated children; ``@name`` and ``#text`` as the folder
    read side gives them (attribute, text), so what it reads can be written back."""
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key == "#text" or key.startswith("@"):
            if isinstance(value, dict | list):
                raise Unwritable(index, where, "an attribute or #text must be a single value")
            if key == "#text":
                elem.text = _xml_text(value, index, where)
            else:
                elem.set(_xml_name(key[1:], index, where), _xml_text(value, index, where))
            continue
        tag = _xml_name(key, index, where)
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            at = f"{where}[{position}]" if isinstance(value, list) else where
            child = ET.SubElement(elem, tag)
            if isinstance(item, dict):
                _fill(child, item, index, at)
            elif isinstance(item, list):
                raise Unwritable(index, at, "XML cannot hold a list directly inside a list")
            else:
                child.text = _xml_text(item, index, at)


def _xml_name(name: str, index: int, where: str) -> str:
    if not _XML_NAME.fullmatch(name):
        raise Unwritable(index, where, f"{name!r} is not a valid XML name")
    return name


def _xml_text(value: Any, index: int, where: str) -> str:
    text = _text(value)
    bad = _XML_ILLEGAL.search(text)
    if bad:
        raise Unwritable(index, where, f"{bad.group()!r} cannot appear in XML")
    return text


def _text(value: Any) -> str:
    """A plain scalar as CSV or XML text: ``None`` empty, booleans as JSON spells them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _writable(value: Any, index: int, path: str) -> Any:
    """``value`` as plain JSON data (Decimal, UUID, big integers as text; dates ISO 8601)."""
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        # orjson stops at 64 bits; text keeps bigger ones exact, as Decimal is kept.
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unwritable(index, path, f"key {key!r} is not text")
            plain[key] = _writable(item, index, f"{path}.{key}" if path else key)
        return plain
    if isinstance(value, list | tuple):
        return [_writable(item, index, f"{path}[{i}]") for i, item in enumerate(value)]
    raise Unwritable(index, path, f"a value of type {type(value).__name__} cannot be written")


# -- files -----------------------------------------------------------------------------------


#: The hidden names the hub writes through before a rename, and nothing else: a local write's
#: ``.<name>.tmp-<12 hex>``, an SFTP upload's ``.<name>.<12 hex>.part`` and the SFTP health
#: probe's ``.erpbridge-health-<12 hex>.tmp``. A process killed mid-write leaves one behind;
#: only names matching this are ever swept away (:meth:`~.drop.DropFolder.write`).
TEMP_NAME = re.compile(
    r"\..+\.tmp-[0-9a-f]{12}|\..+\.[0-9a-f]{12}\.part|\.erpbridge-health-[0-9a-f]{12}\.tmp"
)


def temp_name(name: str) -> str:
    """The hidden name a local write of ``name`` goes through (see :data:`TEMP_NAME`)."""
    # The dot hides it from the folder read side; the cut keeps it within the name length limit.
    return f".{name[:200]}.tmp-{secrets.token_hex(6)}"


def part_name(name: str) -> str:
    """The hidden name an SFTP upload of ``name`` goes through (see :data:`TEMP_NAME`)."""
    # Hidden and *.part: readers of the folder (ours too) skip it while it grows.
    return f".{name[:200]}.{secrets.token_hex(6)}.part"


def probe_name() -> str:
    """A hidden file name to try whether a folder is writable (see :data:`TEMP_NAME`)."""
    return f".erpbridge-health-{secrets.token_hex(6)}.tmp"


def write_atomically(folder: Path, name: str, content: bytes) -> None:
    """Write ``folder/name`` through a hidden temporary file and a rename; readers see the old
    file or the new one, never a part, and no temporary file outlives a failure."""
    temp = folder / temp_name(name)
    # os.open instead of tempfile: its 0o600 would leave the file unreadable to the consumer,
    # while 0o666 here is narrowed by the umask like any other new file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):  # the original error is the one worth reporting
            temp.unlink()
        raise


#: Files of a batch written, then fsynced at once, per round (each holds a descriptor open).
_ROUND = 64
#: fsyncs running at once: the file system's journal commits concurrent ones together.
_SYNC_THREADS = 8


def write_all_atomically(folder: Path, files: Mapping[str, bytes]) -> None:
    """:func:`write_atomically` for a batch of files, with the fsyncs running side by side.

    One fsync after the other waits for one journal commit each (2-4 ms on the 2-core test
    machine): a folder target with ``file_per: record`` wrote 260-340 files per second. Here
    each round's temporary files are all written, then fsynced by a few threads at once (ext4
    and XFS commit concurrent fsyncs together: 4-5x the files per second, measured), and only
    then renamed into place, in order. Every file is still durable before its rename, and no
    temporary file outlives a failure.
    """
    items = list(files.items())
    if len(items) < 2:
        for name, content in items:
            write_atomically(folder, name, content)
        return
    with ThreadPoolExecutor(min(_SYNC_THREADS, len(items)), "fsync") as pool:
        for start in range(0, len(items), _ROUND):
            _write_round(folder, items[start : start + _ROUND], pool)


def _write_round(folder: Path, items: list[tuple[str, bytes]], pool: ThreadPoolExecutor) -> None:
    temps: list[tuple[Path, Path]] = []
    descriptors: list[int] = []
    try:
        for name, content in items:
            temp = folder / temp_name(name)
            descriptors.append(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            temps.append((temp, folder / name))
            with open(descriptors[-1], "wb", closefd=False) as fh:
                fh.write(content)
        list(pool.map(os.fsync, descriptors))
        for fd in descriptors:
            os.close(fd)
        descriptors.clear()
        while temps:
            os.replace(*temps[0])
            temps.pop(0)
    except BaseException:
        for fd in descriptors:
            with contextlib.suppress(OSError):
                os.close(fd)
        for temp, _ in temps:  # the original error is the one worth reporting
            with contextlib.suppress(OSError):
                temp.unlink()
        raise


def sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (POSIX; elsewhere a folder cannot be synced)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
