"""A document template compiled once at load (``erpbridge check`` reports its errors), and the
rendering of one record version into the document's bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import orjson

from erpbridge.documents.edifact import EdifactProblem, build_interchange, escape
from erpbridge.documents.pdf import PdfProblem, html_to_pdf
from erpbridge.documents.sandbox import TemplateProblem, compile_template, render_template
from erpbridge.documents.spec import DocumentSpec, default_extension, default_media_type
from erpbridge.documents.xsd import XmlProblem, check_xml, load_schema
from erpbridge.errors import DataError

if TYPE_CHECKING:
    import xmlschema

__all__ = ["CompiledDocument", "DocumentError", "Numbered", "compile_document"]


class DocumentError(DataError):
    """A document that cannot be made from this record version (template, EDIFACT subset, XSD):
    its deliveries are dead with this message, and no number is taken."""

    def __init__(self, document: str, reason: str) -> None:
        super().__init__(f"document {document!r}", reason)


@dataclass(frozen=True, slots=True)
class Numbered:
    """The number a document gets, when its template has numbering."""

    number: str
    sequence: str
    year: int
    seq: int


@dataclass(frozen=True)
class CompiledDocument:
    """One ``documents:`` entry, ready to render."""

    name: str
    spec: DocumentSpec
    template: jinja2.Template
    base_dir: Path
    schema: xmlschema.XMLSchema | None

    @property
    def media_type(self) -> str:
        return self.spec.media_type or default_media_type(self.spec.format)

    def number(self, year: int, seq: int) -> Numbered:
        """The number ``seq`` of ``year`` as the numbering's format writes it."""
        assert self.spec.numbering is not None
        numbering = self.spec.numbering
        return Numbered(numbering.format.format(year=year, seq=seq), numbering.sequence, year, seq)

    def file_name(self, entity: str, key: str, version: int, number: str | None) -> str:
        """The delivered file's name, with unsafe characters of the key replaced."""
        safe_key = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)
        return self.spec.name_pattern().format(
            number=number or "",
            template=self.name,
            entity=entity,
            key=safe_key,
            version=version,
            ext=default_extension(self.spec.format),
        )

    def render(self, context: Mapping[str, Any], issued_at: datetime, reference: str) -> bytes:
        """The document's bytes for ``context``; :class:`DocumentError` naming the template,
        line and cause when it cannot be made. ``reference`` is EDIFACT's control reference."""
        spec = self.spec
        try:
            text = render_template(self.template, spec.template, context)
            if spec.format == "pdf":
                template_dir = (self.base_dir / spec.template).parent
                return html_to_pdf(text, self.base_dir, template_dir)
            if spec.format == "edifact":
                assert spec.edifact is not None
                text = build_interchange(spec.edifact, text, reference, issued_at)
            content = text.encode(spec.encoding)
            if spec.format == "xml":
                check_xml(content, self.schema, spec.xsd or "")
            elif spec.format == "json":
                orjson.loads(content)
            return content
        except TemplateProblem as exc:
            raise DocumentError(self.name, f"template {exc}") from None
        except (EdifactProblem, XmlProblem, PdfProblem) as exc:
            raise DocumentError(self.name, f"{spec.template}: {exc}") from None
        except orjson.JSONDecodeError as exc:
            raise DocumentError(self.name, f"{spec.template}: not valid JSON: {exc}") from None
        except UnicodeEncodeError as exc:
            raise DocumentError(
                self.name,
                f"{spec.template}: {exc.object[exc.start : exc.end]!r} cannot be "
                f"written in {spec.encoding}",
            ) from None


def compile_document(name: str, spec: DocumentSpec, base_dir: Path) -> CompiledDocument:
    """Compile ``spec``'s template (and load its XSD); :class:`TemplateProblem` or
    :class:`XmlProblem` when that fails."""
    autoescape = spec.format in ("xml", "pdf")
    finalize = escape if spec.format == "edifact" else None
    template = compile_template(base_dir, spec.template, autoescape=autoescape, finalize=finalize)
    schema = load_schema(base_dir / spec.xsd) if spec.xsd else None
    return CompiledDocument(name, spec, template, base_dir, schema)
