"""Documents issued by OUT flows: once per (record version, template), numbered without gap or
duplicate, stored immutably with their SHA-256, archived with metadata; bad templates, EDIFACT
that breaks the subset and XML that fails its XSD are dead deliveries with place and cause, and
take no number."""

from __future__ import annotations

import hashlib
import io
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydifact.segmentcollection import Interchange
from pypdf import PdfReader
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError

from documents.claims import claim, deliver, feed, hub_folder, write_config
from erpbridge import load_config, open_store
from erpbridge.documents.issue import issue
from erpbridge.store.documents import DocumentRef, documents_of
from erpbridge.store.tables import deliveries, documents, records

EDI = """
  credit_note_edi:
    entity: warranty_claim
    format: edifact
    template: templates/credit_note.edi.j2
    numbering: {sequence: credit_note, format: "CN-{year}-{seq:06d}"}
    edifact: {message: INVOIC, sender: "4000000000001:14", recipient: "4711"}
"""
PDF = """
  credit_note_pdf:
    entity: warranty_claim
    format: pdf
    template: templates/credit_note.html.j2
    numbering: {sequence: credit_note, format: "CN-{year}-{seq:06d}"}
"""


def archive_flow(name: str, document: str) -> str:
    return f"""
  - name: {name}
    channel: archive
    entity: warranty_claim
    direction: out
    document: {document}
    retry: {{max_attempts: 2, backoff_s: 0.001, min_delay_s: 0}}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return hub_folder(tmp_path)


@pytest.fixture
def engine(hub_url: str) -> Iterator[Engine]:
    engine = open_store(hub_url)
    yield engine
    engine.dispose()


def states(engine: Engine) -> list[tuple[str, str, str | None]]:
    query = select(deliveries.c.flow, deliveries.c.state, deliveries.c.last_error)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query.order_by(deliveries.c.id))]  # type: ignore[misc]


def test_an_approved_claim_becomes_an_edifact_credit_note_that_reads_back(
    root: Path, engine: Engine, hub_url: str
) -> None:
    config = write_config(root, hub_url, EDI, archive_flow("edi-archive", "credit_note_edi"))
    feed(config, engine, claim("WC-1"))
    assert deliver(config, engine).delivered == 1

    [edi] = (root / "archive" / "credit_note_edi").rglob("*.edi")
    assert edi.name.startswith("CN-") and edi.name.endswith("-000001.edi")
    interchange = Interchange.from_str(edi.read_text(encoding="utf-8"))
    [message] = interchange.get_messages()
    assert (message.type, message.version) == ("INVOIC", "D.96A")
    segments = {
        (s.tag, str(s.elements[0]) if s.tag != "MOA" else s.elements[0][0]): s
        for s in message.segments
    }
    assert segments[("BGM", "381")].elements[1] == edi.stem
    assert segments[("MOA", "77")].elements[0][1] == "300.40"
    assert segments[("MOA", "79")].elements[0][1] == "80.00"
    # A value holding EDIFACT's own separators arrives intact (escaped with '?').
    nad = next(s for s in message.segments if s.tag == "NAD")
    assert nad.elements[3] == "Autohaus Müller + Söhne"
    imd = [s for s in message.segments if s.tag == "IMD"][1]
    assert imd.elements[2][3] == "Brake pads 'sport'"

    meta = orjson.loads(edi.with_name(edi.name + ".json").read_bytes())
    assert meta["sha256"] == hashlib.sha256(edi.read_bytes()).hexdigest()
    assert meta["key"] == "WC-1" and meta["number"] == edi.stem
    assert meta["retain_until"] >= "2036-"  # ten years
    assert edi.stat().st_mode & 0o222 == 0  # read-only


def test_the_pdf_reads_back_with_claim_number_and_amounts(root: Path, engine: Engine) -> None:
    url = str(engine.url)
    config = write_config(root, url, PDF, archive_flow("pdf-archive", "credit_note_pdf"))
    feed(config, engine, claim("WC-7"))
    assert deliver(config, engine).delivered == 1

    [pdf] = (root / "archive" / "credit_note_pdf").rglob("*.pdf")
    reader = PdfReader(io.BytesIO(pdf.read_bytes()))
    page = reader.pages[0].extract_text()
    for expected in ("WC-7", pdf.stem, "300.40", "90.50", "129.90", "80.00", "Müller + Söhne"):
        assert expected in page, expected
    # Rendered to PNG (what a person looks at): the stylesheet beside the template was applied.
    png = root / "page"
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-singlefile", str(pdf), str(png)], check=True)
    assert png.with_suffix(".png").stat().st_size > 5000


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_one_document_per_version_and_template_whatever_the_number_of_flows(
    root: Path, engine: Engine, hub_url: str
) -> None:
    flows = archive_flow("a1", "credit_note_edi") + archive_flow("a2", "credit_note_edi")
    config = write_config(root, hub_url, EDI + PDF, flows + archive_flow("p", "credit_note_pdf"))
    feed(config, engine, claim("WC-1"), claim("WC-2"))
    assert deliver(config, engine).delivered == 6
    with engine.connect() as conn:
        stored = documents_of(conn, ["credit_note_edi", "credit_note_pdf"])
    # Two templates × two claims; one sequence shared by both templates: 1..4, no gap.
    assert len(stored) == 4
    assert sorted(d.seq or 0 for d in stored) == [1, 2, 3, 4]
    # A new version of a claim is a new document with the next number; the old one stays.
    feed(config, engine, claim("WC-1", credit_amount="250.00"), name="d")
    assert deliver(config, engine).delivered == 3
    with engine.connect() as conn:
        again = documents_of(conn, ["credit_note_edi"])
    assert [(d.ref.key, d.ref.version, d.seq) for d in again][-1] == (
        "WC-1",
        2,
        5 if again[-1].ref.template == "credit_note_edi" else 6,
    )
    assert b"MOA+77:250.00'" in again[-1].content


def test_a_stored_document_cannot_be_changed(root: Path, engine: Engine, hub_url: str) -> None:
    config = write_config(root, hub_url, EDI, archive_flow("edi-archive", "credit_note_edi"))
    feed(config, engine, claim("WC-1"))
    deliver(config, engine)
    with pytest.raises(DBAPIError, match="immutable"), engine.begin() as conn:
        conn.execute(update(documents).values(content=b"forged"))


def test_numbers_stay_gapless_when_workers_race(root: Path, engine: Engine, hub_url: str) -> None:
    """Eight threads issue the documents of 40 claims (each twice): numbers 1..40, each once."""
    config = write_config(root, hub_url, EDI, archive_flow("edi-archive", "credit_note_edi"))
    feed(config, engine, *(claim(f"WC-{i}") for i in range(40)))
    loaded = load_config(config)
    doc = loaded.documents["credit_note_edi"]
    with engine.connect() as conn:
        rows = conn.execute(select(records.c.id, records.c.key, records.c.payload)).all()
    refs = [
        (DocumentRef(doc.name, r.id, "warranty_claim", r.key, 1), orjson.loads(r.payload))
        for r in rows
    ]
    errors: list[BaseException] = []

    def work(part: list[tuple[DocumentRef, dict[str, object]]]) -> None:
        try:
            for ref, payload in part:
                issue(engine, doc, ref, payload)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    parts = [refs[i::4] for i in range(4)] * 2
    threads = [threading.Thread(target=work, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with engine.connect() as conn:
        seqs = conn.execute(select(documents.c.seq).order_by(documents.c.seq)).scalars().all()
        last = conn.execute(text("SELECT last FROM document_sequences")).scalar_one()
    assert seqs == list(range(1, 41)) and last == 40


BAD = {
    "undefined": ("{{ record.no_such_field }}", "templates/bad.j2:3: undefined: "),
    "sandbox": (
        "{{ ''.__class__ }}",
        "templates/bad.j2:3: refused by the sandbox: access to "
        "attribute '__class__' of 'str' object is unsafe",
    ),
    "sandbox_mro": ("{{ record.__class__.__mro__ }}", "templates/bad.j2:3: refused by the sandbox"),
    "filter": ("{{ record.vin | money }}", "templates/bad.j2:3: ValueError: money: "),
    "loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "templates/bad.j2:3: stopped: loops ran more than 1,000,000 steps",
    ),
    "memory": ("{{ record.vin * 10**9 }}", "templates/bad.j2:3: stopped: repeating 17 characters"),
}


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_template_error_is_a_dead_delivery_with_file_line_and_cause(
    root: Path, engine: Engine, hub_url: str, case: str
) -> None:
    body, expected = BAD[case]
    (root / "templates" / "bad.j2").write_text(f"<a>\n  <b>x</b>\n  {body}\n</a>\n", "utf-8")
    docs = (
        EDI
        + """
  bad:
    entity: warranty_claim
    format: xml
    template: templates/bad.j2
    numbering: {sequence: credit_note, format: "CN-{year}-{seq:06d}"}
"""
    )
    flows = archive_flow("bad-archive", "bad") + archive_flow("edi-archive", "credit_note_edi")
    config = write_config(root, hub_url, docs, flows)
    feed(config, engine, claim("WC-1"))
    stats = deliver(config, engine)
    assert (stats.delivered, stats.dead) == (1, 1)
    [(_, state, error)] = [s for s in states(engine) if s[0] == "bad-archive"]
    assert state == "dead"
    assert error is not None and error.startswith(f"document 'bad': template {expected}"), error
    # The failed template took no number: the good document of the same claim has number 1.
    with engine.connect() as conn:
        assert conn.execute(select(documents.c.seq)).scalars().all() == [1]


XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="creditNote">
    <xs:complexType><xs:sequence>
      <xs:element name="claim" type="xs:string"/>
      <xs:element name="vin">
        <xs:simpleType><xs:restriction base="xs:string">
          <xs:pattern value="[A-HJ-NPR-Z0-9]{17}"/>
        </xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="amount" type="xs:decimal"/>
    </xs:sequence></xs:complexType>
  </xs:element>
</xs:schema>
"""


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_xml_that_fails_its_xsd_is_dead_with_the_validators_message(
    root: Path, engine: Engine, hub_url: str
) -> None:
    (root / "templates" / "credit.xsd").write_text(XSD, "utf-8")
    (root / "templates" / "credit.xml.j2").write_text(
        "<creditNote>\n  <claim>{{ record.claim_number }}</claim>\n  <vin>{{ record.vin }}</vin>\n"
        "  <amount>{{ record.credit_amount | money }}</amount>\n</creditNote>\n",
        "utf-8",
    )
    docs = """
  credit_xml:
    entity: warranty_claim
    format: xml
    template: templates/credit.xml.j2
    xsd: templates/credit.xsd
    numbering: {sequence: xml, format: "X{seq}"}
"""
    config = write_config(root, hub_url, docs, archive_flow("xml-archive", "credit_xml"))
    feed(config, engine, claim("WC-1"), claim("WC-2", vin="WVW-0001"))
    stats = deliver(config, engine)
    assert (stats.delivered, stats.dead) == (1, 1)
    dead = [s for s in states(engine) if s[1] == "dead"]
    assert dead[0][2] is not None and dead[0][2].startswith(
        "document 'credit_xml': templates/credit.xml.j2: not valid against templates/credit.xsd: "
        "/creditNote/vin: value doesn't match any pattern of ['[A-HJ-NPR-Z0-9]{17}']"
    ), dead
    [xml] = (root / "archive").rglob("X1.xml")
    assert b"<amount>300.40</amount>" in xml.read_bytes()


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("BGM+380+1+9'", "INVOIC needs a DTM segment"),
        ("BGM+220+1+9'DTM+137:20261207:102'UNS+S'", "document code '220' is not a INVOIC"),
        (
            "BGM+381+1+9'DTM+137:2026-12-07:102'UNS+S'MOA+77:1'",
            "segment 2 (DTM): date '2026-12-07' is not CCYYMMDD",
        ),
        (
            "BGM+381+1+9'DTM+137:20261207:102'UNS+S'MOA+77:{{ record.vin }}'",
            "segment 4 (MOA): 'WVWZZZ1JZXW000001' is not a number",
        ),
        ("BGM+381+1+9'DTM+137:20261207:102'UNS+S'CNT+2:1'", "INVOIC needs a MOA"),
        ("UNH+1+INVOIC:D:96A:UN'BGM+381+1+9'", "UNH is written by the hub"),
        ("BGM+381+1+9'DTM+137:20261207:102'XYZ+1'", "segment 3 (XYZ): not allowed in the header"),
    ],
)
def test_edifact_outside_the_message_subset_is_refused_with_the_segment(
    root: Path, engine: Engine, hub_url: str, body: str, expected: str
) -> None:
    (root / "templates" / "bad.edi.j2").write_text(body, "utf-8")
    docs = """
  bad_edi:
    entity: warranty_claim
    format: edifact
    template: templates/bad.edi.j2
    edifact: {message: INVOIC, sender: A, recipient: B}
"""
    config = write_config(root, hub_url, docs, archive_flow("edi-archive", "bad_edi"))
    feed(config, engine, claim("WC-1"))
    assert deliver(config, engine).dead == 1
    [(_, _, error)] = states(engine)
    assert error is not None and error.startswith("document 'bad_edi': templates/bad.edi.j2: ")
    assert expected in error, error


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_a_pdf_copy_carries_the_number_of_the_edifact_credit_note(
    root: Path, engine: Engine, hub_url: str
) -> None:
    copy = """
  credit_note_pdf:
    entity: warranty_claim
    format: pdf
    template: templates/credit_note.html.j2
    number_of: credit_note_edi
"""
    # Only the PDF is delivered: the EDIFACT credit note is issued first, for its number.
    config = write_config(root, hub_url, EDI + copy, archive_flow("pdf", "credit_note_pdf"))
    feed(config, engine, claim("WC-1"), claim("WC-2"))
    assert deliver(config, engine).delivered == 2
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                documents.c.template, documents.c.key, documents.c.number, documents.c.seq
            ).order_by(documents.c.key, documents.c.template)
        ).all()
        last = conn.execute(text("SELECT last FROM document_sequences")).scalar_one()
    year = rows[0].number.split("-")[1]
    assert [tuple(r) for r in rows] == [
        ("credit_note_edi", "WC-1", f"CN-{year}-000001", 1),
        ("credit_note_pdf", "WC-1", f"CN-{year}-000001", None),
        ("credit_note_edi", "WC-2", f"CN-{year}-000002", 2),
        ("credit_note_pdf", "WC-2", f"CN-{year}-000002", None),
    ]
    assert last == 2  # two numbers taken for four documents
    pdfs = sorted((root / "archive" / "credit_note_pdf").rglob("*.pdf"))
    assert [p.stem for p in pdfs] == [f"CN-{year}-000001", f"CN-{year}-000002"]
    assert pdfs[0].stem in PdfReader(io.BytesIO(pdfs[0].read_bytes())).pages[0].extract_text()
