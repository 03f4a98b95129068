"""Options shared by the transports that move files (``folder``, ``sftp``).

:class:`DropOptions` is the part of a channel's ``options:`` about the inbox (archive and error
subfolders, encoding, size and age limits); :class:`FolderStreamOptions` and
:class:`FolderTargetOptions` are a flow's ``source:`` and ``target:`` blocks, the same for every
file transport.
"""

from __future__ import annotations

import codecs
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from erpbridge.systems.sap.idoc import IdocControl
from erpbridge.transports.base import StreamOptions, TargetOptions
from erpbridge.transports.files.formats import Format
from erpbridge.transports.files.writers import template_placeholders

__all__ = [
    "DropOptions",
    "FolderStreamOptions",
    "FolderTargetOptions",
    "known_encoding",
    "subfolder",
]


class DropOptions(BaseModel):
    """The inbox part of a file channel's ``options:`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    archive: str = "archive"
    """Subfolder of ``path`` that receives files read successfully."""
    error: str = "error"
    """Subfolder of ``path`` that receives broken files, each with a ``<name>.reason.txt``."""
    encoding: str = "utf-8"
    """Text encoding of CSV, JSON and JSONL files (XML declares its own); a UTF-8 BOM is skipped."""
    max_file_mb: float = Field(default=100, gt=0)
    """Larger files are not read but moved to ``error/`` as oversized."""
    min_age_seconds: float = Field(default=0, ge=0)
    """Files modified more recently are skipped, as they may still be being written."""

    @field_validator("archive", "error")
    @classmethod
    def _plain_subfolder(cls, value: str) -> str:
        return subfolder(value)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return known_encoding(value)


class FolderStreamOptions(StreamOptions):
    """A flow's ``source:`` block for a file channel (``folder``, ``sftp``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    pattern: str = "*"
    """Glob matched (case-sensitively) against file names directly in the inbox."""
    format: Format | None = None
    """File format; ``None`` guesses from the extension (.csv, .json, .jsonl/.ndjson, .xml)."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV field delimiter."""
    record_tag: str | None = None
    """XML: element name (without namespace) of one record; default: the root's children."""
    records_path: str | None = None
    """JSON: dot path to the records array (``data.items``); default: the top-level value."""
    idoc_type: str | None = None
    """IDoc: the basic type or extension read (``IDOCTYP`` or ``CIMTYP``: ``DEBMAS07``); an
    IDoc of another type is rejected. Default: any."""
    message_type: str | None = None
    """IDoc: the message type read (``MESTYP``: ``DEBMAS``); another is rejected. Default: any."""

    @field_validator("pattern")
    @classmethod
    def _no_separator(cls, value: str) -> str:
        if "/" in value or "\\" in value:
            raise ValueError("pattern matches file names in the folder; subfolders are not read")
        return value

    @model_validator(mode="after")
    def _idoc_options_need_idoc(self) -> FolderStreamOptions:
        if self.format != "idoc" and (self.idoc_type or self.message_type):
            raise ValueError("idoc_type and message_type apply to format: idoc")
        return self


_DEFAULT_NAMES = {
    "record": "{entity}-{key}-v{version}.{ext}",
    "batch": "{entity}-{timestamp}-{delivery_id}.{ext}",
}


class FolderTargetOptions(TargetOptions):
    """A flow's ``target:`` block for a file channel (``folder``, ``sftp``)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    format: Format = "json"
    """File format written."""
    file_per: Literal["record", "batch"] = "record"
    """One file per record version (idempotent), or one file per write call (a batch)."""
    name: str = _DEFAULT_NAMES["record"]
    """File name template: ``{entity}``, ``{key}``, ``{version}``, ``{delivery_id}``,
    ``{timestamp}`` (UTC, ``%Y%m%dT%H%M%S%fZ``) and ``{ext}`` (the format). Default:
    ``{entity}-{key}-v{version}.{ext}`` per record, ``{entity}-{timestamp}-{delivery_id}.{ext}``
    per batch, whose ``{entity}`` and ``{delivery_id}`` are its first record's. A per-record name
    with ``{timestamp}`` makes a new file each time the same version is written."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """CSV field delimiter."""
    root_tag: str = Field(default="records", pattern=r"^[^\W\d][\w.-]*$")
    """XML: the document element."""
    record_tag: str = Field(default="record", pattern=r"^[^\W\d][\w.-]*$")
    """XML: the element of one record."""
    encoding: str = "utf-8"
    """Text encoding of the files written."""
    subfolder: str | None = None
    """Subfolder of the channel's ``path`` to write into (created when missing)."""
    idoc: IdocControl | None = None
    """IDoc: the control record (``EDI_DC40``) of the IDocs written, required with ``format:
    idoc``: IDoc and message type, sender and receiver ports and partners."""

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None:
            file_per = data.get("file_per", "record")
            return {**data, "name": _DEFAULT_NAMES.get(file_per, _DEFAULT_NAMES["record"])}
        return data

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return known_encoding(value)

    @field_validator("subfolder")
    @classmethod
    def _plain_subfolder(cls, value: str | None) -> str | None:
        return None if value is None else subfolder(value)

    @model_validator(mode="after")
    def _idoc_block_with_idoc_format(self) -> FolderTargetOptions:
        if self.format == "idoc" and self.idoc is None:
            raise ValueError(
                "format: idoc needs an idoc block (idoc_type, message_type, sender_port, "
                "sender_partner, receiver_port, receiver_partner)"
            )
        if self.format != "idoc" and self.idoc is not None:
            raise ValueError("an idoc block applies to format: idoc")
        return self

    @model_validator(mode="after")
    def _name_fits_file_per(self) -> FolderTargetOptions:
        try:
            used = template_placeholders(self.name)
        except ValueError as exc:
            raise ValueError(f"name {self.name!r}: {exc}") from None
        if self.file_per == "batch" and used & {"key", "version"}:
            raise ValueError(
                f"name {self.name!r}: a batch file holds many records, so it cannot be named "
                "after one {key} or {version}"
            )
        if self.file_per == "record" and not used & {"key", "delivery_id"}:
            # Otherwise every record of a call would overwrite the one before.
            raise ValueError(
                f"name {self.name!r}: a file per record needs {{key}} or {{delivery_id}}"
            )
        return self


def subfolder(value: str) -> str:
    """``value`` if it is a relative path without ``..``; ``ValueError`` otherwise."""
    parts = PurePath(value).parts
    if not parts or PurePath(value).is_absolute() or ".." in parts:
        raise ValueError("must be a subfolder of path (relative, without '..')")
    return value


def known_encoding(value: str) -> str:
    """``value`` if Python knows the codec; ``ValueError`` otherwise."""
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value
