"""SAP IDoc XML files, read and written by the file transports (``folder``, ``sftp``).

An IDoc XML document (as SAP's XML file port writes and reads it) is a root element named after
the IDoc type, holding one ``IDOC`` element per IDoc; each IDoc starts with its control record
``EDI_DC40`` and goes on with its data segments (``E1EDK01``, ``E1EDKA1``…), which hold fields
and child segments::

    <ORDERS05><IDOC BEGIN="1">
      <EDI_DC40 SEGMENT="1"><IDOCTYP>ORDERS05</IDOCTYP><MESTYP>ORDERS</MESTYP>…</EDI_DC40>
      <E1EDK01 SEGMENT="1"><CURCY>EUR</CURCY><BELNR>4711</BELNR></E1EDK01>
      <E1EDKA1 SEGMENT="1"><PARVW>AG</PARVW><PARTN>1000002</PARTN></E1EDKA1>
    </IDOC></ORDERS05>

Reading makes one record per ``IDOC``: the control record and each segment become nested dicts
keyed by segment and field name. A segment that occurs at most once in an IDoc (:data:`SINGLE`)
is an object; every other segment is a list, even when a file holds one, so a mapping's paths
never depend on how many a file happens to carry (``E1EDKA1[PARVW=AG].PARTN``). An IDoc that
breaks the structure becomes a :class:`SourceProblem` naming it and the reason; the other IDocs
of the file are read. Writing turns each mapped record into one ``IDOC`` with a control record
filled from :class:`IdocControl`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from erpbridge.transports.base import SourceProblem, SourceRecord
from erpbridge.transports.files.formats import BrokenFile, Item, Opener, xml_events
from erpbridge.transports.files.writers import Unwritable

__all__ = [
    "CONTROL_FIELDS",
    "SINGLE",
    "IdocControl",
    "read_idocs",
    "render_idocs",
]

#: Segments an IDoc holds at most once (read as objects, not lists): the control record, the
#: header of ORDERS/INVOIC/ORDRSP (``E1EDK01``), the customer master (``E1KNA1M``, ``E1KNA11``),
#: the material master (``E1MARAM``) and the delivery header (``E1EDL20``).
SINGLE = frozenset({"EDI_DC40", "E1EDK01", "E1KNA1M", "E1KNA11", "E1MARAM", "E1EDL20"})

#: The fields of the control record ``EDI_DC40``, in the order of its definition.
CONTROL_FIELDS = (
    "TABNAM", "MANDT", "DOCNUM", "DOCREL", "STATUS", "DIRECT", "OUTMOD", "EXPRSS", "TEST",
    "IDOCTYP", "CIMTYP", "MESTYP", "MESCOD", "MESFCT", "STD", "STDVRS", "STDMES", "SNDPOR",
    "SNDPRT", "SNDPFC", "SNDPRN", "SNDSAD", "SNDLAD", "RCVPOR", "RCVPRT", "RCVPFC", "RCVPRN",
    "RCVSAD", "RCVLAD", "CREDAT", "CRETIM", "REFINT", "REFGRP", "REFMES", "ARCKEY", "SERIAL",
)  # fmt: skip

_SAP_NAME = r"^[A-Z0-9_]+$"
# Segment and field names as XML elements (SAP's are upper case letters, digits and '_').
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters XML 1.0 cannot carry at all, not even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class IdocControl(BaseModel):
    """The control record (``EDI_DC40``) of IDocs an OUT flow writes: who sends what to whom.

    SAP's inbound processing finds the partner profile (WE20) by sender partner, partner type
    and message type, and the port (WE21) by ``sender_port``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    idoc_type: str = Field(min_length=1, max_length=30, pattern=_SAP_NAME)
    """Basic IDoc type, ``IDOCTYP`` (``ORDERS05``, ``DEBMAS07``, ``INVOIC02``); the root element
    of the file unless ``extension`` is set."""
    message_type: str = Field(min_length=1, max_length=30, pattern=_SAP_NAME)
    """Message type, ``MESTYP`` (``ORDERS``, ``DEBMAS``, ``INVOIC``)."""
    extension: str | None = Field(default=None, min_length=1, max_length=30, pattern=_SAP_NAME)
    """IDoc extension, ``CIMTYP`` (``ZORDERS05``); then also the root element."""
    sender_port: str = Field(min_length=1, max_length=10)
    """Sender port, ``SNDPOR``: the port the receiving SAP system knows this sender by."""
    sender_partner_type: str = Field(default="LS", min_length=1, max_length=2)
    """Sender partner type, ``SNDPRT``: ``LS`` logical system, ``KU`` customer, ``LI`` vendor."""
    sender_partner: str = Field(min_length=1, max_length=10)
    """Sender partner number, ``SNDPRN`` (a logical system name for ``LS``)."""
    receiver_port: str = Field(min_length=1, max_length=10)
    """Receiver port, ``RCVPOR``: ``SAP`` + the system id for an SAP system (``SAPS4H``)."""
    receiver_partner_type: str = Field(default="LS", min_length=1, max_length=2)
    """Receiver partner type, ``RCVPRT``."""
    receiver_partner: str = Field(min_length=1, max_length=10)
    """Receiver partner number, ``RCVPRN`` (the SAP client's logical system: ``S4HCLNT100``)."""
    client: str | None = Field(default=None, pattern=r"^\d{3}$")
    """SAP client, ``MANDT`` (three digits); left out when not set."""
    release: str | None = Field(default=None, max_length=4)
    """SAP release of the IDoc record types, ``DOCREL`` (``756``); left out when not set."""
    test: bool = False
    """Mark the IDocs as test IDocs (``TEST`` = ``X``)."""


# -- reading -------------------------------------------------------------------------------------


class _Malformed(Exception):
    """One IDoc breaks the structure; it becomes a problem, the file goes on."""


def read_idocs(
    name: str,
    open_file: Opener,
    *,
    idoc_type: str | None = None,
    message_type: str | None = None,
) -> Iterator[Item]:
    """One record per ``IDOC`` element of the file ``name`` (problems for malformed ones).

    ``idoc_type`` (``IDOCTYP`` or ``CIMTYP``) and ``message_type`` (``MESTYP``), when given, are
    what the flow reads: an IDoc of another type is a problem, not a record. DOCTYPE and entity
    declarations, and nesting deeper than :data:`~.xmlguard.MAX_DEPTH`, are refused; a file that
    is no XML, or holds no IDoc, is :class:`BrokenFile`.
    """
    stack: list[ET.Element] = []
    record_depth = 2  # the root's children; 1 when the root is a lone <IDOC>
    index = 0
    with open_file() as fb:
        for event, elem in xml_events(fb):
            if event == "start":
                stack.append(elem)
                if len(stack) == 1 and _local(elem.tag) == "IDOC":
                    record_depth = 1
                continue
            depth = len(stack)
            stack.pop()
            if depth != record_depth:
                continue  # inside an IDoc (kept until it ends), or the root
            yield _item(elem, f"{name}[{index}]", idoc_type, message_type)
            index += 1
            elem.clear()
            if stack:
                stack[-1].remove(elem)  # one IDoc in memory at a time, whatever the size
    if index == 0:
        raise BrokenFile("no IDOC element in the file (is it an IDoc XML file?)")


def _item(elem: ET.Element, position: str, idoc_type: str | None, message_type: str | None) -> Item:
    docnum = _docnum(elem)
    try:
        if _local(elem.tag) != "IDOC":
            raise _Malformed(f"<{_local(elem.tag)}> where an <IDOC> element belongs")
        tags = [_local(child.tag) for child in elem]
        if "EDI_DC40" not in tags:
            raise _Malformed("no control record EDI_DC40")
        if tags[0] != "EDI_DC40":
            raise _Malformed(f"it starts with {tags[0]}; the control record EDI_DC40 comes first")
        data = _segment(elem, "IDOC")
        _check_control(data["EDI_DC40"], idoc_type, message_type)
    except _Malformed as exc:
        where = f" (DOCNUM {docnum})" if docnum else ""
        tag = _local(elem.tag)
        payload = _raw(elem) if tag == "IDOC" else {tag: _raw(elem)}
        return SourceProblem(position + where, f"malformed IDoc: {exc}", payload)
    return SourceRecord(data=data, position=position + (f" (DOCNUM {docnum})" if docnum else ""))


def _docnum(elem: ET.Element) -> str:
    """The IDoc number from the control record, read before the IDoc is checked (for a
    rejection's place); empty when there is none."""
    for child in elem:
        if _local(child.tag) == "EDI_DC40":
            for field in child:
                if _local(field.tag) == "DOCNUM":
                    return (field.text or "").strip()
    return ""


def _check_control(
    control: Mapping[str, Any], idoc_type: str | None, message_type: str | None
) -> None:
    found_type, extension = control.get("IDOCTYP", ""), control.get("CIMTYP", "")
    found_message = control.get("MESTYP", "")
    missing = [f for f, v in (("IDOCTYP", found_type), ("MESTYP", found_message)) if not v]
    if missing:
        raise _Malformed(f"the control record EDI_DC40 has no {' and no '.join(missing)}")
    if idoc_type is not None and idoc_type not in (found_type, extension):
        kind = f"{found_type} ({extension})" if extension else found_type
        raise _Malformed(f"it is a {kind} IDoc; this flow reads {idoc_type}")
    if message_type is not None and message_type != found_message:
        raise _Malformed(f"its message type is {found_message}; this flow reads {message_type}")


def _segment(elem: ET.Element, path: str) -> dict[str, Any]:
    """A segment's fields (text) and child segments (objects or lists), checked.

    A child is a segment when it has children or SAP's ``SEGMENT`` attribute; directly in the
    ``IDOC`` every child is one (an empty ``<E1EDK01/>`` too).
    """
    data: dict[str, Any] = {}
    _no_loose_text(elem.text, path)
    for child in elem:
        tag = _local(child.tag)
        _no_loose_text(child.tail, path)
        if len(child) or "SEGMENT" in child.attrib or path == "IDOC":
            where = f"{path}.{tag}"
            segment = _segment(child, where)
            if tag in SINGLE:
                if tag in data:
                    raise _Malformed(f"segment {tag} appears twice in {path}; it may appear once")
                data[tag] = segment
            elif isinstance(data.setdefault(tag, []), list):
                data[tag].append(segment)
            else:
                raise _Malformed(f"{where} is both a field and a segment")
            continue
        if tag in data:
            raise _Malformed(f"{tag} appears twice in {path} as a field")
        data[tag] = (child.text or "").strip()
    return data


def _no_loose_text(text: str | None, path: str) -> None:
    loose = (text or "").strip()
    if loose:
        raise _Malformed(f"{path} holds text outside its fields: {loose[:40]!r}")


def _raw(elem: ET.Element) -> dict[str, Any]:
    """The IDoc as plain data for the rejection, structure checks aside."""
    data: dict[str, Any] = {}
    for child in elem:
        value: Any = _raw(child) if len(child) else (child.text or "").strip()
        data.setdefault(_local(child.tag), []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in data.items()}


def _local(tag: str) -> str:
    """``{namespace}Tag`` → ``Tag``."""
    return tag.rpartition("}")[2]


# -- writing -------------------------------------------------------------------------------------


def render_idocs(
    records: list[Mapping[str, Any]],
    control: IdocControl,
    *,
    docnums: list[int],
    encoding: str,
    now: datetime | None = None,
) -> bytes:
    """``records`` as one IDoc XML file, one ``IDOC`` each, numbered ``docnums`` (16 digits).

    Each record maps segment names to segments: an object of fields (and child segments), or
    a list of them for a repeated segment. An ``EDI_DC40`` object in a record overrides control
    fields for that IDoc. Empty fields are left out, ``True`` is written ``X`` (SAP's flag),
    dates ``YYYYMMDD``, times ``HHMMSS``. Raises :class:`Unwritable` naming the record and path.
    """
    if len(docnums) != len(records):
        raise ValueError("one DOCNUM per record")
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    root = ET.Element(control.extension or control.idoc_type)
    for index, (data, docnum) in enumerate(zip(records, docnums, strict=True)):
        idoc = ET.SubElement(root, "IDOC", BEGIN="1")
        overrides = data.get("EDI_DC40") or {}
        if not isinstance(overrides, Mapping):
            raise Unwritable(index, "EDI_DC40", "the control record must be an object of fields")
        _control(idoc, control, overrides, docnum, stamp, index)
        for name, value in data.items():
            if name != "EDI_DC40":
                _segments(idoc, name, value, index, name)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f"<?xml version='1.0' encoding='{encoding}'?>\n{body}\n".encode(
        encoding, "xmlcharrefreplace"
    )


def _control(
    idoc: ET.Element,
    control: IdocControl,
    overrides: Mapping[str, Any],
    docnum: int,
    stamp: datetime,
    index: int,
) -> None:
    unknown = sorted(set(overrides) - set(CONTROL_FIELDS))
    if unknown:
        raise Unwritable(index, f"EDI_DC40.{unknown[0]}", "not a field of the control record")
    fields: dict[str, Any] = {
        "TABNAM": "EDI_DC40",
        "MANDT": control.client,
        "DOCNUM": f"{docnum:016d}",
        "DOCREL": control.release,
        "DIRECT": "2",  # inbound: the receiving system processes it
        "TEST": control.test,
        "IDOCTYP": control.idoc_type,
        "CIMTYP": control.extension,
        "MESTYP": control.message_type,
        "SNDPOR": control.sender_port,
        "SNDPRT": control.sender_partner_type,
        "SNDPRN": control.sender_partner,
        "RCVPOR": control.receiver_port,
        "RCVPRT": control.receiver_partner_type,
        "RCVPRN": control.receiver_partner,
        "CREDAT": stamp.date(),
        "CRETIM": stamp.time().replace(microsecond=0),
        **overrides,
    }
    segment = ET.SubElement(idoc, "EDI_DC40", SEGMENT="1")
    for name in CONTROL_FIELDS:
        text = _field_text(fields.get(name), index, f"EDI_DC40.{name}")
        if text:
            ET.SubElement(segment, name).text = text


def _segments(parent: ET.Element, name: str, value: Any, index: int, path: str) -> None:
    """Segment ``name`` (an object, or a list of objects for a repeated one) under ``parent``."""
    _check_name(name, index, path)
    if value is None:
        return
    if not isinstance(value, Mapping | list | tuple):
        raise Unwritable(index, path, "a segment must be an object of fields or a list of them")
    items = [value] if isinstance(value, Mapping) else list(value)
    if name in SINGLE and len(items) > 1:
        raise Unwritable(index, path, f"segment {name} may appear once, got {len(items)}")
    for position, item in enumerate(items):
        at = path if isinstance(value, Mapping) else f"{path}[{position}]"
        if not isinstance(item, Mapping):
            raise Unwritable(index, at, "a segment must be an object of fields")
        if all(v in (None, "") for v in item.values()):
            continue  # nothing to say: SAP would get an empty segment
        _fields(ET.SubElement(parent, name, SEGMENT="1"), item, index, at)


def _fields(segment: ET.Element, data: Mapping[str, Any], index: int, path: str) -> None:
    for key, value in data.items():
        where = f"{path}.{key}"
        if not isinstance(key, str):
            raise Unwritable(index, path, f"key {key!r} is not text")
        if isinstance(value, Mapping) or (
            isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value)
        ):
            _segments(segment, key, value, index, where)
            continue
        if isinstance(value, list | tuple):
            raise Unwritable(index, where, "a field holds one value, not a list")
        _check_name(key, index, where)
        text = _field_text(value, index, where)
        if text:
            ET.SubElement(segment, key).text = text


def _check_name(name: str, index: int, where: str) -> None:
    if not _NAME.fullmatch(name):
        raise Unwritable(index, where, f"{name!r} is not a segment or field name")


def _field_text(value: Any, index: int, where: str) -> str:
    """A field's value as IDoc text; ``None``, ``False`` and ``""`` are empty (left out)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "X"
    if isinstance(value, datetime):
        reason = "a date-time needs two IDoc fields: format the date and the time apart"
        raise Unwritable(index, where, reason + " (format_date: '%Y%m%d' and '%H%M%S')")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, time):
        return value.strftime("%H%M%S")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str | int | float):
        text = str(value)
        bad = _XML_ILLEGAL.search(text)
        if bad:
            raise Unwritable(index, where, f"{bad.group()!r} cannot appear in XML")
        return text
    raise Unwritable(index, where, f"a value of type {type(value).__name__} cannot be written")
