"""The ``documents:`` section of the configuration: one template per name, for one entity."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DocumentFormat",
    "DocumentSpec",
    "EdifactSpec",
    "NumberingSpec",
    "default_extension",
    "default_media_type",
]

#: ``text`` is any other text format (fixed-width, custom); ``xml`` escapes values for XML and
#: may be checked against an XSD; ``json`` must parse; ``pdf`` is HTML + CSS laid out by
#: WeasyPrint; ``edifact`` is a message body checked and enveloped with pydifact.
DocumentFormat = Literal["xml", "csv", "json", "text", "pdf", "edifact"]

_EXTENSIONS: dict[str, str] = {
    "xml": "xml",
    "csv": "csv",
    "json": "json",
    "text": "txt",
    "pdf": "pdf",
    "edifact": "edi",
}
_MEDIA_TYPES: dict[str, str] = {
    "xml": "application/xml",
    "csv": "text/csv",
    "json": "application/json",
    "text": "text/plain",
    "pdf": "application/pdf",
    "edifact": "application/EDIFACT",
}
_NUMBER_FIELDS = frozenset({"year", "seq"})
_NAME_FIELDS = frozenset({"number", "template", "entity", "key", "version", "ext"})
_FIELD = re.compile(r"\{(\w+)(?::[^{}]*)?\}")


def default_extension(fmt: DocumentFormat) -> str:
    """The file extension of a format (``edi`` for EDIFACT)."""
    return _EXTENSIONS[fmt]


def default_media_type(fmt: DocumentFormat) -> str:
    """The media type of a format."""
    return _MEDIA_TYPES[fmt]


def _fields_of(pattern: str, allowed: frozenset[str], what: str) -> set[str]:
    used = set(_FIELD.findall(pattern))
    unknown = used - allowed
    if unknown:
        raise ValueError(
            f"{what} {pattern!r}: unknown placeholder {{{sorted(unknown)[0]}}} "
            f"(known: {', '.join('{' + n + '}' for n in sorted(allowed))})"
        )
    return used


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NumberingSpec(_Strict):
    """A gapless number per sequence and calendar year (UTC), as invoices and credit notes need."""

    sequence: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)
    """The sequence's name; templates naming the same sequence share its numbers."""
    format: str = "{year}-{seq:06d}"
    """How the number reads: ``{year}`` and ``{seq}`` with Python format specs,
    e.g. ``CN-{year}-{seq:06d}``."""

    @field_validator("format")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        used = _fields_of(value, _NUMBER_FIELDS, "format")
        if "seq" not in used:
            raise ValueError(f"format {value!r} needs {{seq}}, or every number would be the same")
        try:
            value.format(year=2026, seq=1)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"format {value!r}: {exc}") from None
        return value


class EdifactSpec(_Strict):
    """The interchange envelope (UNB/UNZ) and message header (UNH) of an EDIFACT document."""

    message: Literal["INVOIC", "ORDERS"]
    """Message type; the body is checked against the hub's D.96A subset of it."""
    sender: str = Field(min_length=1, max_length=35)
    """UNB interchange sender (S002), e.g. a GLN; ``id:qualifier`` adds the code qualifier."""
    recipient: str = Field(min_length=1, max_length=35)
    """UNB interchange recipient (S003)."""
    syntax: Literal["UNOA", "UNOB", "UNOC", "UNOD", "UNOY"] = "UNOC"
    """Syntax identifier (character set); version 3."""
    association: str | None = Field(default=None, max_length=6)
    """Association assigned code of UNH (S009 0057), e.g. ``EAN008``."""
    line_breaks: bool = False
    """A line break after each segment (common, though not in the standard)."""


class DocumentSpec(_Strict):
    """One document template: what entity it renders, in which format, numbered how."""

    entity: str
    """The entity whose record versions the template renders."""
    format: DocumentFormat
    template: str = Field(min_length=1)
    """Template file (Jinja2, sandboxed), relative to the configuration file."""
    description: str = ""
    numbering: NumberingSpec | None = None
    """A gapless number per sequence and year; without it a document has no number."""
    number_of: str | None = None
    """Carry the number of another document of the same record version instead of taking one
    (the PDF copy of an EDIFACT credit note shows the credit note's number); that document is
    issued first."""
    file_name: str | None = None
    """Name of the delivered file: ``{number}``, ``{template}``, ``{entity}``, ``{key}``,
    ``{version}``, ``{ext}``. Default ``{number}.{ext}`` with numbering, else
    ``{template}-{key}-v{version}.{ext}``."""
    media_type: str | None = None
    """Default: by format (``application/pdf``, ``application/EDIFACT`` …)."""
    encoding: str = "utf-8"
    """Text encoding of text formats (EDIFACT: of the interchange)."""
    xsd: str | None = None
    """XML only: an XML Schema file the document must satisfy before it goes out."""
    edifact: EdifactSpec | None = None
    """EDIFACT only (required): envelope and message type."""

    @field_validator("file_name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "/" in value or "\\" in value or ".." in value or value.startswith("."):
            raise ValueError("must be a file name, without path separators or '..'")
        _fields_of(value, _NAME_FIELDS, "file_name")
        return value

    @model_validator(mode="after")
    def _format_options(self) -> DocumentSpec:
        if self.format == "edifact" and self.edifact is None:
            raise ValueError("format: edifact needs an edifact block (message, sender, recipient)")
        if self.format != "edifact" and self.edifact is not None:
            raise ValueError("an edifact block applies to format: edifact")
        if self.xsd is not None and self.format != "xml":
            raise ValueError("xsd applies to format: xml")
        if self.number_of is not None and self.numbering is not None:
            raise ValueError("numbering and number_of exclude each other: one number per document")
        numbered = self.numbering is not None or self.number_of is not None
        if self.file_name and "{number}" in self.file_name and not numbered:
            raise ValueError(
                f"file_name {self.file_name!r} uses {{number}} but there is no numbering"
            )
        return self

    def name_pattern(self) -> str:
        """The file name pattern in effect."""
        if self.file_name:
            return self.file_name
        numbered = self.numbering is not None or self.number_of is not None
        return "{number}.{ext}" if numbered else "{template}-{key}-v{version}.{ext}"
