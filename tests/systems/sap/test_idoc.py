"""IDoc XML files: reading (one record per IDOC), writing (control record from the target's
options), round trips through the ``sap`` IDoc presets, and malformed IDocs.

The samples (``idoc_samples``, and the small IDocs below) are hand-written samples of the
documented IDoc structure (SAP's XML-IDoc format: a root named after the IDoc type, one IDOC
element per IDoc, the control record EDI_DC40 first, segments with SEGMENT="1" holding fields),
with segments and qualifiers of the ORDERS05, DEBMAS07 and INVOIC02 basic types as SAP documents
them; they were not exported from an SAP system.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Any

import pytest
from pydantic import ValidationError

from erpbridge.config.models import FlowConfig
from erpbridge.mapping.compiler import CompiledMapping, compile_mapping, compile_outbound
from erpbridge.model.entities import BUILTIN_ENTITIES
from erpbridge.systems import system_types
from erpbridge.systems.sap.idoc import IdocControl, read_idocs, render_idocs
from erpbridge.transports.base import SourceProblem, SourceRecord
from erpbridge.transports.files.formats import BrokenFile, Item
from erpbridge.transports.files.writers import Unwritable
from systems.sap.idoc_samples import CONTROL, DEBMAS07, INVOIC02, ORDERS05

TO_SAP = IdocControl(
    idoc_type="ORDERS05",
    message_type="ORDERS",
    sender_port="ERPBRIDGE",
    sender_partner="ERPBRIDGE",
    receiver_port="SAPS4H",
    receiver_partner="S4HCLNT100",
    client="100",
)
NOW = datetime(2024, 6, 3, 10, 15, 30, tzinfo=UTC)


def opener(content: str | bytes) -> Any:
    data = content.encode() if isinstance(content, str) else content

    @contextlib.contextmanager
    def open_file() -> Iterator[IO[bytes]]:
        yield io.BytesIO(data)

    return open_file


def read(content: str | bytes, **expect: str) -> list[Item]:
    return list(read_idocs("idocs.xml", opener(content), **expect))


def data(items: list[Item]) -> list[dict[str, Any]]:
    assert all(isinstance(i, SourceRecord) for i in items), items
    return [dict(i.data) for i in items if isinstance(i, SourceRecord)]


def preset(name: str) -> CompiledMapping:
    """The compiled mapping of one of the ``sap`` system type's presets."""
    flow = FlowConfig.model_validate({"name": name, "channel": "sap", **presets()[name]})
    if flow.direction == "out":
        return compile_outbound(flow.mapping)
    return compile_mapping(flow.mapping, BUILTIN_ENTITIES[flow.entity])


def presets() -> dict[str, dict[str, Any]]:
    return system_types()["sap"].presets()


# -- reading -------------------------------------------------------------------------------------


def test_an_orders05_idoc_is_one_record_of_segments() -> None:
    [item] = read(ORDERS05, idoc_type="ORDERS05", message_type="ORDERS")

    assert isinstance(item, SourceRecord)
    assert item.position == "idocs.xml[0] (DOCNUM 0000000000481516)"
    idoc = dict(item.data)
    assert idoc["EDI_DC40"]["IDOCTYP"] == "ORDERS05" and idoc["EDI_DC40"]["SNDPRN"] == "S4HCLNT100"
    # A header segment that occurs once is an object; every other segment is a list.
    assert idoc["E1EDK01"] == {
        "ACTION": "000", "CURCY": "EUR", "ZTERM": "0001", "BELNR": "SO-2024-0815"
    }  # fmt: skip
    assert [s["ORGID"] for s in idoc["E1EDK14"]] == ["1010", "10", "OR"]
    assert idoc["E1EDK02"] == [{"QUALF": "001", "BELNR": "PO-4712", "DATUM": "20240603"}]
    assert idoc["E1EDS01"] == [{"SUMID": "002", "SUMME": "44.00", "SUNIT": "EUR"}]
    first, second = idoc["E1EDP01"]
    assert first["E1EDP19"] == [
        {"QUALF": "002", "IDTNR": "TG11", "KTEXT": "Trad.Good 11"},
        {"QUALF": "001", "IDTNR": "ACME-4711"},
    ]
    assert (second["POSEX"], second["MENEE"], len(second["E1EDP19"])) == ("000020", "KGM", 1)


def test_the_orders_preset_maps_an_orders05_idoc_field_by_field() -> None:
    [idoc] = data(read(ORDERS05))

    order = preset("orders-idoc-in")(idoc)

    assert order == {
        "number": "SO-2024-0815",
        "customer_code": "1000002",
        "po_number": "PO-4712",
        "status": "new",
        "order_date": "2024-06-03",
        "currency": "EUR",
        "total": "44",
        "shipping_address": {"type": "shipping", "name": "Acme Lager Wien",
                             "street": "Ringstraße 3", "postal_code": "1010", "city": "Wien",
                             "country": "AT"},
        "lines": [
            {"line_no": 10, "sku": "TG11", "description": "Trad.Good 11", "quantity": "2",
             "unit": "pcs", "unit_price": "10", "amount": "20"},
            {"line_no": 20, "sku": "RM-100", "description": "Steel sheet", "quantity": "1.5",
             "unit": "kg", "unit_price": "16", "amount": "24"},
        ],
    }  # fmt: skip


def test_debmas07_customers_map_with_their_sales_area_and_block() -> None:
    acme, cobalt = data(read(DEBMAS07, idoc_type="DEBMAS07"))
    assert [area["VKORG"] for area in acme["E1KNA1M"]["E1KNVVM"]] == ["1010", "1710"]
    assert acme["E1KNA1M"]["E1KNB1M"] == [{"MSGFN": "005", "BUKRS": "1010", "AKONT": "12100000"}]

    mapping = preset("customers-idoc-in")

    assert mapping(acme) == {
        "code": "1000002",
        "name": "Acme Industrie GmbH",
        "vat_id": "DE129273398",
        "phone": "+49 89 1234560",
        "currency": "EUR",
        "payment_terms": "0004",
        "locked": False,
        "addresses": [{"type": "other", "street": "Bahnhofstraße 2", "postal_code": "80331",
                       "city": "München", "region": "09", "country": "DE"}],
    }  # fmt: skip
    cobalt_customer = mapping(cobalt)
    assert (cobalt_customer["code"], cobalt_customer["locked"]) == ("1000006", True)
    assert "currency" not in cobalt_customer  # no sales area in this IDoc


def test_invoic02_totals_lines_and_references() -> None:
    [idoc] = data(read(INVOIC02, idoc_type="INVOIC02", message_type="INVOIC"))

    invoice = preset("invoices-idoc-in")(idoc)

    assert invoice == {
        "number": "0090000123",
        "order_number": "0005000002",
        "customer_code": "1000002",
        "status": "open",
        "invoice_date": "2024-05-15",
        "currency": "EUR",
        "net": "43",
        "tax": "8.17",
        "total": "51.17",
        "lines": [
            {"line_no": 10, "sku": "TG12", "description": "Trad.Good 12", "quantity": "1",
             "unit": "pcs", "unit_price": "11", "amount": "11"},
            {"line_no": 20, "sku": "RM-100", "description": "Steel sheet", "quantity": "2",
             "unit": "kg", "unit_price": "16", "amount": "32"},
        ],
    }  # fmt: skip


def test_a_lone_idoc_root_and_namespaces_are_read() -> None:
    lone = (
        '<IDOC BEGIN="1" xmlns="urn:sap-com:document:sap:idoc">'
        + CONTROL.format(docnum="7", idoctyp="DEBMAS07", mestyp="DEBMAS")
        + '<E1KNA1M SEGMENT="1"><KUNNR>42</KUNNR></E1KNA1M></IDOC>'
    )
    [idoc] = data(read(lone))
    assert idoc["E1KNA1M"] == {"KUNNR": "42"}


# -- writing -------------------------------------------------------------------------------------

HUB_ORDER: dict[str, Any] = {
    "number": "SO-1001",
    "customer_code": "1000002",
    "po_number": "PO-99",
    "status": "new",
    "order_date": "2024-06-03",
    "currency": "EUR",
    "total": "31.5",
    "shipping_address": {"type": "shipping", "name": "Acme Lager Wien", "street": "Ringstraße 3",
                         "postal_code": "1010", "city": "Wien", "country": "AT"},
    "lines": [
        {"line_no": 10, "sku": "TG11", "description": "Trad.Good 11", "quantity": "2",
         "unit": "pcs", "unit_price": "10", "amount": "20"},
        {"line_no": 20, "sku": "RM-100", "quantity": "0.75", "unit": "kg", "unit_price": "15.3333",
         "amount": "11.5"},
    ],
}  # fmt: skip


def test_a_hub_order_goes_out_as_orders05_and_reads_back_the_same() -> None:
    mapped = preset("orders-idoc-out")(HUB_ORDER)

    content = render_idocs([mapped], TO_SAP, docnums=[17], encoding="utf-8", now=NOW)

    [item] = read(content, idoc_type="ORDERS05", message_type="ORDERS")
    assert isinstance(item, SourceRecord)
    assert item.position == "idocs.xml[0] (DOCNUM 0000000000000017)"
    idoc = dict(item.data)
    assert idoc["EDI_DC40"] == {
        "TABNAM": "EDI_DC40", "MANDT": "100", "DOCNUM": "0000000000000017", "DIRECT": "2",
        "IDOCTYP": "ORDERS05", "MESTYP": "ORDERS", "SNDPOR": "ERPBRIDGE", "SNDPRT": "LS",
        "SNDPRN": "ERPBRIDGE", "RCVPOR": "SAPS4H", "RCVPRT": "LS", "RCVPRN": "S4HCLNT100",
        "CREDAT": "20240603", "CRETIM": "101530",
    }  # fmt: skip
    assert content.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<ORDERS05>")
    assert [(s["QUALF"], s["ORGID"]) for s in idoc["E1EDK14"]] == [
        ("008", "1010"), ("007", "10"), ("006", "00"), ("012", "OR")
    ]  # fmt: skip
    assert [p["PARVW"] for p in idoc["E1EDKA1"]] == ["AG", "WE"]  # no billing address: no RE
    assert idoc["E1EDP01"][1] == {
        "POSEX": "20", "MENGE": "0.75", "MENEE": "KGM", "VPREI": "15.3333", "NETWR": "11.5",
        "E1EDP19": [{"QUALF": "002", "IDTNR": "RM-100"}],
    }  # fmt: skip
    back = preset("orders-idoc-in")(idoc)
    assert back == {**HUB_ORDER, "lines": [
        {**line, **{k: str(Decimal(v)) for k, v in line.items() if k in ("quantity", "amount")}}
        for line in HUB_ORDER["lines"]]}  # fmt: skip


def test_idocs_of_a_batch_and_control_overrides() -> None:
    records = [
        {"E1KNA1M": {"KUNNR": "1", "NAME1": "Eins"}},
        {"EDI_DC40": {"RCVPRN": "OTHERSYS", "SERIAL": "20240603101530"},
         "E1KNA1M": {"KUNNR": "2", "E1KNVVM": [{"VKORG": "1010"}, {"VKORG": "1710"}]}},
    ]  # fmt: skip
    control = IdocControl.model_validate(
        {**TO_SAP.model_dump(), "idoc_type": "DEBMAS07", "message_type": "DEBMAS",
         "extension": "ZDEBMAS07", "test": True, "client": None}
    )  # fmt: skip

    content = render_idocs(records, control, docnums=[1, 2], encoding="iso-8859-1", now=NOW)

    assert b"<ZDEBMAS07>" in content and b"encoding='iso-8859-1'" in content
    first, second = data(read(content, idoc_type="ZDEBMAS07", message_type="DEBMAS"))
    assert (first["EDI_DC40"]["CIMTYP"], first["EDI_DC40"]["TEST"]) == ("ZDEBMAS07", "X")
    assert "MANDT" not in first["EDI_DC40"]
    assert (second["EDI_DC40"]["RCVPRN"], second["EDI_DC40"]["SERIAL"]) == (
        "OTHERSYS",
        "20240603101530",
    )
    assert second["E1KNA1M"]["E1KNVVM"] == [{"VKORG": "1010"}, {"VKORG": "1710"}]


def test_values_are_written_the_idoc_way() -> None:
    record = {
        "E1EDK01": {
            "BELNR": 4711,
            "WKURS": Decimal("1.08500"),
            "KZAZU": True,  # a flag: X
            "AUTLF": False,  # not set: left out
            "ABLAD": "",  # empty: left out
            "NTGEW": None,
        },
        "E1EDK03": [{"IDDAT": "012", "DATUM": date(2024, 6, 3)}],
        "E1EDK02": [{"QUALF": "001", "BELNR": None}],  # nothing but a qualifier is still sent
        "E1EDKA1": [{"PARVW": None, "PARTN": ""}],  # an empty segment is not
    }
    [idoc] = data(read(render_idocs([record], TO_SAP, docnums=[1], encoding="utf-8")))
    assert idoc["E1EDK01"] == {"BELNR": "4711", "WKURS": "1.08500", "KZAZU": "X"}
    assert idoc["E1EDK03"] == [{"IDDAT": "012", "DATUM": "20240603"}]
    assert idoc["E1EDK02"] == [{"QUALF": "001"}]
    assert "E1EDKA1" not in idoc


def test_the_same_records_render_the_same_bytes() -> None:
    mapped = preset("orders-idoc-out")(HUB_ORDER)
    once = render_idocs([mapped], TO_SAP, docnums=[5], encoding="utf-8", now=NOW)
    assert render_idocs([mapped], TO_SAP, docnums=[5], encoding="utf-8", now=NOW) == once


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"E1EDK01": "x"}, "E1EDK01", "a segment must be an object of fields or a list of them"),
        ({"E1EDK01": {"BELNR": ["1", "2"]}}, "E1EDK01.BELNR", "a field holds one value"),
        ({"E1EDKA1": [{"PARVW": "AG"}, "WE"]}, "E1EDKA1[1]", "a segment must be an object"),
        ({"E1EDK01": [{"BELNR": "1"}, {"BELNR": "2"}]}, "E1EDK01", "may appear once, got 2"),
        ({"E1EDK03": [{"DATUM": datetime(2024, 6, 3, 8, 0)}]}, "E1EDK03[0].DATUM", "date-time"),
        ({"E1EDK01": {"BEL NR": "1"}}, "E1EDK01.BEL NR", "not a segment or field name"),
        ({"E1EDK01": {"BELNR": "a\x00b"}}, "E1EDK01.BELNR", "cannot appear in XML"),
        ({"EDI_DC40": {"FOO": "1"}}, "EDI_DC40.FOO", "not a field of the control record"),
        ({"EDI_DC40": "x"}, "EDI_DC40", "must be an object of fields"),
    ],
)
def test_a_record_that_cannot_be_an_idoc_is_refused_with_its_path(
    record: dict[str, Any], field: str, reason: str
) -> None:
    good = {"E1EDK01": {"BELNR": "1"}}
    with pytest.raises(Unwritable) as refused:
        render_idocs([good, record], TO_SAP, docnums=[1, 2], encoding="utf-8")
    assert (refused.value.index, refused.value.field) == (1, field)
    assert reason in refused.value.reason


def test_control_options_are_checked() -> None:
    with pytest.raises(ValidationError) as caught:
        IdocControl.model_validate(
            {"idoc_type": "orders05", "message_type": "ORDERS", "sender_port": "P" * 11,
             "sender_partner": "EB", "receiver_port": "SAPS4H", "client": "1"}
        )  # fmt: skip
    wrong = {(e["loc"][0], e["type"]) for e in caught.value.errors()}
    assert wrong == {
        ("idoc_type", "string_pattern_mismatch"),
        ("sender_port", "string_too_long"),
        ("receiver_partner", "missing"),
        ("client", "string_pattern_mismatch"),
    }


# -- malformed IDocs -----------------------------------------------------------------------------


def idoc(body: str, *, control: str | None = None) -> str:
    dc40 = CONTROL.format(docnum="1", idoctyp="ORDERS05", mestyp="ORDERS")
    return f'<IDOC BEGIN="1">{dc40 if control is None else control}{body}</IDOC>'


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (idoc("", control=""), "no control record EDI_DC40"),
        (
            '<IDOC><E1EDK01 SEGMENT="1"><BELNR>1</BELNR></E1EDK01>'
            + CONTROL.format(docnum="1", idoctyp="ORDERS05", mestyp="ORDERS")
            + "</IDOC>",
            "it starts with E1EDK01; the control record EDI_DC40 comes first",
        ),
        (
            idoc('<E1EDK01 SEGMENT="1"><BELNR>1</BELNR></E1EDK01><E1EDK01 SEGMENT="1"/>'),
            "segment E1EDK01 appears twice in IDOC; it may appear once",
        ),
        (
            idoc('<E1EDKA1 SEGMENT="1"><PARVW>AG</PARVW><PARVW>WE</PARVW></E1EDKA1>'),
            "PARVW appears twice in IDOC.E1EDKA1 as a field",
        ),
        (
            idoc('<E1EDK01 SEGMENT="1">loose<BELNR>1</BELNR></E1EDK01>'),
            "IDOC.E1EDK01 holds text outside its fields: 'loose'",
        ),
        (
            idoc("", control='<EDI_DC40 SEGMENT="1"><DOCNUM>1</DOCNUM></EDI_DC40>'),
            "the control record EDI_DC40 has no IDOCTYP and no MESTYP",
        ),
        (
            idoc("", control=CONTROL.format(docnum="1", idoctyp="DEBMAS07", mestyp="DEBMAS")),
            "it is a DEBMAS07 IDoc; this flow reads ORDERS05",
        ),
        (
            idoc("", control=CONTROL.format(docnum="1", idoctyp="ORDERS05", mestyp="ORDCHG")),
            "its message type is ORDCHG; this flow reads ORDERS",
        ),
        ("<E1EDK01><BELNR>1</BELNR></E1EDK01>", "<E1EDK01> where an <IDOC> element belongs"),
    ],
)
def test_a_malformed_idoc_is_rejected_with_place_and_reason_and_the_rest_is_read(
    bad: str, reason: str
) -> None:
    good = idoc('<E1EDK01 SEGMENT="1"><BELNR>4711</BELNR></E1EDK01>')
    document = f"<ORDERS05>{good}{bad}{good}</ORDERS05>"

    items = read(document, idoc_type="ORDERS05", message_type="ORDERS")

    assert [type(i).__name__ for i in items] == ["SourceRecord", "SourceProblem", "SourceRecord"]
    problem = items[1]
    assert isinstance(problem, SourceProblem)
    assert problem.position.startswith("idocs.xml[1]")
    assert problem.reason == f"malformed IDoc: {reason}"
    assert problem.payload is not None  # the IDoc as it came, kept with the rejection
    if "E1EDK01" in bad:
        assert "E1EDK01" in problem.payload


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("<ORDERS05><IDOC>", "XML syntax error"),
        ("<ORDERS05/>", "no IDOC element in the file"),
        ("KUNNR;NAME1\n1;Eins\n", "XML syntax error"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><ORDERS05>&e;</ORDERS05>',
            "DOCTYPE/entity declarations are not accepted",
        ),
    ],
)
def test_a_file_that_is_no_idoc_xml_is_broken_as_a_whole(content: str, reason: str) -> None:
    with pytest.raises(BrokenFile, match=reason):
        read(content)
