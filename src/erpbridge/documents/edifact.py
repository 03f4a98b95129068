"""EDIFACT documents: a template writes the message body, pydifact builds and checks the rest.

The template writes the segments between UNH and UNT in EDIFACT syntax
(``BGM+381+{{ document.number }}+9'``). Every value it prints is escaped with the release
character (``?+``, ``?:``, ``?'``, ``??``), so a claim text holding ``+`` or ``'`` cannot break
the syntax. The body is parsed with pydifact, checked against the hub's subset of the D.96A
message (:data:`SUBSETS`), wrapped in UNB/UNH … UNT/UNZ with the counts pydifact computes, and
the finished interchange is parsed back once more before it is stored.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydifact.exceptions import EDISyntaxError, MissingImplementationWarning
from pydifact.parser import Parser
from pydifact.segmentcollection import Interchange, Message
from pydifact.segments import Segment

from erpbridge.documents.spec import EdifactSpec

__all__ = ["SUBSETS", "EdifactProblem", "MessageSubset", "build_interchange", "escape"]

_RELEASE = re.compile(r"([?+:'])")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_DATE_102 = re.compile(r"^\d{8}$")


class EdifactProblem(Exception):
    """The message body breaks the syntax or the message subset; names the segment."""


def escape(value: Any) -> Any:
    """Jinja2 ``finalize``: every printed value escaped with the release character ``?``; line
    breaks become spaces (a segment is one line of data)."""
    if value is None:
        return ""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return _RELEASE.sub(r"?\1", text)


@dataclass(frozen=True)
class MessageSubset:
    """What the hub accepts of one message type: the document codes of BGM, the segments of the
    header, the detail (from the first LIN) and the summary (after UNS), and the mandatory ones."""

    codes: frozenset[str]
    header: frozenset[str]
    detail: frozenset[str]
    summary: frozenset[str]
    mandatory: tuple[str, ...]


#: D.96A subsets: INVOIC (380 invoice, 381 credit note, 383 debit note, 384 corrected invoice,
#: 389 self-billed invoice) and ORDERS (220 order, 221 blanket order, 226 call-off, 227
#: consignment order, 228 sample order).
SUBSETS: dict[str, MessageSubset] = {
    "INVOIC": MessageSubset(
        codes=frozenset({"380", "381", "383", "384", "389"}),
        header=frozenset(
            {
                "BGM",
                "DTM",
                "PAI",
                "ALI",
                "IMD",
                "FTX",
                "RFF",
                "NAD",
                "LOC",
                "FII",
                "CTA",
                "COM",
                "TAX",
                "CUX",
                "PAT",
                "PCD",
                "MOA",
                "ALC",
            }
        ),
        detail=frozenset(
            {
                "LIN",
                "PIA",
                "IMD",
                "MEA",
                "QTY",
                "ALI",
                "DTM",
                "GIN",
                "FTX",
                "MOA",
                "PRI",
                "RFF",
                "TAX",
                "ALC",
                "PCD",
                "NAD",
                "LOC",
            }
        ),
        summary=frozenset({"UNS", "CNT", "MOA", "TAX", "ALC", "RFF"}),
        mandatory=("BGM", "DTM", "UNS", "MOA"),
    ),
    "ORDERS": MessageSubset(
        codes=frozenset({"220", "221", "226", "227", "228"}),
        header=frozenset(
            {
                "BGM",
                "DTM",
                "PAI",
                "ALI",
                "IMD",
                "FTX",
                "RFF",
                "NAD",
                "LOC",
                "FII",
                "CTA",
                "COM",
                "TAX",
                "CUX",
                "PAT",
                "TOD",
                "TDT",
                "MOA",
                "ALC",
            }
        ),
        detail=frozenset(
            {
                "LIN",
                "PIA",
                "IMD",
                "MEA",
                "QTY",
                "DTM",
                "MOA",
                "FTX",
                "PRI",
                "RFF",
                "TAX",
                "ALC",
                "NAD",
                "LOC",
                "SCC",
            }
        ),
        summary=frozenset({"UNS", "CNT", "MOA"}),
        mandatory=("BGM", "DTM", "UNS"),
    ),
}


def _parse_body(text: str) -> list[Segment]:
    body = "".join(line.strip() for line in text.splitlines())
    if not body:
        raise EdifactProblem("the template wrote no segments")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingImplementationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)  # pydifact: an empty segment
            return list(Parser().parse(body))
    except (EDISyntaxError, ValueError) as exc:
        raise EdifactProblem(f"not EDIFACT syntax: {exc}") from None


def _element(segment: Segment, index: int, part: int = 0) -> str:
    value = segment[index]
    if isinstance(value, list):
        return str(value[part]) if part < len(value) else ""
    return "" if value is None or part else str(value)


def _check_segment(position: int, segment: Segment) -> None:
    where = f"segment {position} ({segment.tag})"
    if segment.tag == "DTM":
        qualifier, stamp, fmt = (_element(segment, 0, i) for i in range(3))
        if not qualifier or not stamp:
            raise EdifactProblem(f"{where}: DTM needs a qualifier and a date (C507)")
        if fmt == "102" and not _DATE_102.match(stamp):
            raise EdifactProblem(f"{where}: date {stamp!r} is not CCYYMMDD (format 102)")
    elif segment.tag in {"MOA", "QTY", "PRI"}:
        qualifier, amount = _element(segment, 0, 0), _element(segment, 0, 1)
        if not qualifier:
            raise EdifactProblem(f"{where}: {segment.tag} needs a qualifier")
        if not _NUMBER.match(amount):
            raise EdifactProblem(f"{where}: {amount!r} is not a number")
    elif segment.tag == "LIN" and not _element(segment, 0).isdigit():
        raise EdifactProblem(f"{where}: LIN needs a line item number")
    elif segment.tag == "NAD" and not _element(segment, 0):
        raise EdifactProblem(f"{where}: NAD needs a party qualifier")


def check_body(message: str, segments: list[Segment]) -> None:
    """Check the body against the subset of ``message``: order of the sections, known segments,
    mandatory segments, BGM's document code, numbers and dates."""
    subset = SUBSETS[message]
    for tag in ("UNA", "UNB", "UNH", "UNT", "UNZ"):
        if any(s.tag == tag for s in segments):
            raise EdifactProblem(f"{tag} is written by the hub; the template writes the body only")
    if segments[0].tag != "BGM":
        raise EdifactProblem(f"segment 1 ({segments[0].tag}): the body starts with BGM")
    code = _element(segments[0], 0, 0)
    if code not in subset.codes:
        raise EdifactProblem(
            f"segment 1 (BGM): document code {code!r} is not a {message} "
            f"(one of {', '.join(sorted(subset.codes))})"
        )
    section, allowed = "header", subset.header
    for position, segment in enumerate(segments, start=1):
        if segment.tag == "LIN" and section == "header":
            section, allowed = "detail", subset.detail
        elif segment.tag == "UNS":
            if section == "summary":
                raise EdifactProblem(f"segment {position} (UNS): a second UNS")
            section, allowed = "summary", subset.summary
        if segment.tag not in allowed:
            raise EdifactProblem(
                f"segment {position} ({segment.tag}): not allowed in the {section} of "
                f"{message} (allowed: {', '.join(sorted(allowed))})"
            )
        _check_segment(position, segment)
    tags = [s.tag for s in segments]
    for tag in subset.mandatory:
        if tag not in tags:
            raise EdifactProblem(f"{message} needs a {tag} segment")
    if message == "INVOIC" and "MOA" not in tags[tags.index("UNS") :]:
        raise EdifactProblem("INVOIC needs a MOA (total amounts) after UNS")


def _party(value: str) -> str | list[str]:
    return value.split(":", 1) if ":" in value else value


def build_interchange(spec: EdifactSpec, body: str, reference: str, issued_at: datetime) -> str:
    """The interchange text: UNB, UNH, the checked ``body``, UNT, UNZ. ``reference`` (digits
    and letters, at most 14) is the interchange control and message reference."""
    segments = _parse_body(body)
    check_body(spec.message, segments)
    control = re.sub(r"[^A-Za-z0-9]", "", reference)[-14:] or "1"
    interchange = Interchange(
        _party(spec.sender),
        _party(spec.recipient),
        control,
        (spec.syntax, 3),
        timestamp=issued_at.replace(tzinfo=None),
    )
    identifier = ["INVOIC" if spec.message == "INVOIC" else "ORDERS", "D", "96A", "UN"]
    if spec.association:
        identifier.append(spec.association)
    message = Message(control, identifier)
    message.add_segments(segments)
    interchange.add_message(message)
    text = interchange.serialize(break_lines=spec.line_breaks)
    _parse_back(text, len(segments))
    return text


def _parse_back(text: str, expected: int) -> None:
    """The finished interchange, read back with pydifact: one message of ``expected`` segments."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingImplementationWarning)
            messages = list(Interchange.from_str(text).get_messages())
    except (EDISyntaxError, ValueError) as exc:
        raise EdifactProblem(f"the interchange does not read back: {exc}") from None
    if len(messages) != 1 or len(messages[0].segments) != expected:
        raise EdifactProblem("the interchange does not read back to the segments written")
