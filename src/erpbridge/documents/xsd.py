"""XML documents checked before they go out: well-formed (defusedxml) and, when the template
names one, valid against an XML Schema (xmlschema)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

if TYPE_CHECKING:
    import xmlschema

__all__ = ["XmlProblem", "check_xml", "load_schema"]


class XmlProblem(Exception):
    """The XML is not well-formed or not valid: where and why, in the validator's words."""


def load_schema(path: Path) -> xmlschema.XMLSchema:
    """The XML Schema at ``path``; :class:`XmlProblem` when it cannot be read or is not one."""
    import xmlschema  # ~0.3 s to import: only for a template that names an XSD

    try:
        return xmlschema.XMLSchema(str(path))
    except (OSError, xmlschema.XMLSchemaException, SyntaxError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XmlProblem(f"cannot load the XML Schema {path}: {first}") from None


def check_xml(content: bytes, schema: xmlschema.XMLSchema | None, schema_name: str) -> None:
    """:class:`XmlProblem` for XML that is not well-formed or that ``schema`` does not accept."""
    try:
        root = SafeET.fromstring(content)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        raise XmlProblem(f"not well-formed XML: {exc}") from None
    if schema is None:
        return
    for error in schema.iter_errors(root):
        reason = error.reason or error.message
        raise XmlProblem(f"not valid against {schema_name}: {error.path}: {reason}")
