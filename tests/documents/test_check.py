"""``erpbridge check`` compiles every document template at load: a syntax error, a missing
file, a bad XSD or a flow naming the wrong document is reported with file, line and cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from documents.claims import hub_folder, write_config
from erpbridge.cli import app


def check(root: Path, documents: str, flows: str) -> str:
    config = write_config(root, f"sqlite:///{root / 'hub.db'}", documents, flows)
    result = CliRunner().invoke(app, ["check", str(config)])
    assert result.exit_code != 0, result.output
    return result.output


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return hub_folder(tmp_path)


def test_a_template_syntax_error_names_the_template_file_and_line(root: Path) -> None:
    (root / "templates" / "broken.j2").write_text("<a>\n  <b/>\n  {{ record.vin ) }}\n</a>\n")
    documents = "  broken: {entity: warranty_claim, format: xml, template: templates/broken.j2}"
    out = check(root, documents, "")
    assert "documents.broken.template: template templates/broken.j2:3: unexpected ')'" in out, out


def test_every_document_problem_is_reported_at_once(root: Path) -> None:
    (root / "templates" / "a.xsd").write_text("<not-a-schema/>")
    documents = """
  missing: {entity: warranty_claim, format: text, template: templates/nope.j2}
  wrong_entity: {entity: claim, format: pdf, template: templates/credit_note.html.j2}
  no_envelope: {entity: warranty_claim, format: edifact, template: templates/credit_note.edi.j2}
  bad_xsd:
    entity: warranty_claim
    format: xml
    template: templates/credit_note.html.j2
    xsd: templates/a.xsd
  bad_number:
    entity: warranty_claim
    format: pdf
    template: templates/credit_note.html.j2
    numbering: {sequence: cn, format: "CN-{year}"}
"""
    flows = """
  - {name: a, channel: archive, entity: warranty_claim, direction: out, document: credit_notes}
  - {name: b, channel: archive, entity: warranty_claim, direction: out}
  - {name: c, channel: platform, entity: warranty_claim, direction: in, document: missing}
"""
    out = check(root, documents, flows)
    for expected in (
        "documents.missing.template: template templates/nope.j2: the file does not exist",
        "documents.wrong_entity.entity: unknown entity 'claim'",
        "documents.no_envelope: format: edifact needs an edifact block",
        "documents.bad_xsd.xsd: cannot load the XML Schema",
        "documents.bad_number.numbering.format: format 'CN-{year}' needs {seq}",
        "flows[1].document: unknown document 'credit_notes'",
        "flows[2].channel: channel 'archive' is an archive, which keeps documents: the flow "
        "needs `document:`",
        "flows[3].document: an IN flow reads records; only an OUT flow delivers a document",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"


def test_number_of_names_a_numbered_document_of_the_same_entity(root: Path) -> None:
    documents = """
  plain: {entity: warranty_claim, format: text, template: templates/credit_note.edi.j2}
  copy_a: {entity: warranty_claim, format: pdf, template: templates/credit_note.html.j2,
           number_of: credit_notes}
  copy_b: {entity: warranty_claim, format: pdf, template: templates/credit_note.html.j2,
           number_of: plain}
  both:
    entity: warranty_claim
    format: pdf
    template: templates/credit_note.html.j2
    number_of: plain
    numbering: {sequence: cn}
"""
    out = check(root, documents, "")
    for expected in (
        "documents.copy_a.number_of: unknown document 'credit_notes'",
        "documents.copy_b.number_of: document 'plain' has no numbering of its own to share",
        "documents.both: numbering and number_of exclude each other",
    ):
        assert expected in out, (expected, out)
