"""Hostile XML on every entry point where the hub parses XML: files (XML, IDoc), XML-RPC answers,
OData ``$metadata``, SOAP WSDLs. Each is refused with a named error saying why; none raises
anything else (a RecursionError, an entity expanded, a file read)."""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from erpbridge.systems.sap.idoc import read_idocs
from erpbridge.transports.files.formats import BrokenFile, read_items
from erpbridge.transports.odata.edm import parse_metadata
from erpbridge.transports.rpc.wire import xml_loads
from erpbridge.transports.soap.transport import SoapChannelOptions, SoapTransport
from erpbridge.transports.xmlguard import MAX_DEPTH, XmlRefused, fromstring, xmlrpc_values

REFUSED = "DOCTYPE/entity declarations are not accepted"
TOO_DEEP = f"nested more than {MAX_DEPTH} elements deep"

BOMB = (
    '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
)
PASSWD = "file:///etc/passwd"
EVIL_DTD = "http://127.0.0.1:9/evil.dtd"
#: (DOCTYPE, what goes where the value is, declared encoding, what the refusal says)
HOSTILE: dict[str, tuple[str, str, str, str]] = {
    "billion-laughs": (BOMB, "&d;", "UTF-8", REFUSED),
    "external-entity": (f"<!DOCTYPE r [<!ENTITY e SYSTEM {PASSWD!r}>]>", "&e;", "UTF-8", REFUSED),
    "external-dtd": (f"<!DOCTYPE r SYSTEM {EVIL_DTD!r}>", "x", "UTF-8", REFUSED),
    "parameter-entity": (
        f"<!DOCTYPE r [<!ENTITY % p SYSTEM {EVIL_DTD!r}> %p;]>",
        "x",
        "UTF-8",
        REFUSED,
    ),
    "utf16-doctype": ('<!DOCTYPE r [<!ENTITY e "boom">]>', "&e;", "UTF-16", REFUSED),
    "deep": ("", "<x>" * 5000 + "x" + "</x>" * 5000, "UTF-8", TOO_DEEP),
}


def document(kind: str, template: str) -> bytes:
    doctype, value, encoding, _ = HOSTILE[kind]
    text = f'<?xml version="1.0" encoding="{encoding}"?>{doctype}{template.format(value=value)}'
    return text.encode(encoding.lower())


def opener(content: bytes) -> Any:
    @contextlib.contextmanager
    def open_file() -> Iterator[IO[bytes]]:
        yield io.BytesIO(content)

    return open_file


def read_file(fmt: str) -> Callable[[bytes], Any]:
    def read(content: bytes) -> Any:
        if fmt == "idoc":
            return list(read_idocs("hostile.xml", opener(content)))
        return list(
            read_items(
                "hostile.xml",
                opener(content),
                fmt,  # type: ignore[arg-type]
                encoding="utf-8",
                delimiter=",",
                record_tag=None,
                records_path=None,
                required=frozenset(),
            )
        )

    return read


IDOC = (
    '<ORDERS05><IDOC BEGIN="1"><EDI_DC40 SEGMENT="1"><DOCNUM>1</DOCNUM></EDI_DC40>'
    '<E1EDK01 SEGMENT="1"><BELNR>{value}</BELNR></E1EDK01></IDOC></ORDERS05>'
)
RPC = "<methodResponse><params><param><value><string>{value}</string></value></param></params>"
RPC += "</methodResponse>"
EDMX = (
    '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">'
    "<edmx:DataServices><Doc>{value}</Doc></edmx:DataServices></edmx:Edmx>"
)
#: entry point → (template, how it is parsed, the error it must raise, what that error starts with)
ENTRIES: dict[str, tuple[str, Callable[[bytes], Any], type[Exception], str]] = {
    "xml-file": ("<r><a><nr>{value}</nr></a></r>", read_file("xml"), BrokenFile, ""),
    "idoc-file": (IDOC, read_file("idoc"), BrokenFile, ""),
    "xml-rpc": (RPC, xml_loads, ValueError, "XML-RPC response refused: "),
    "odata-edm": (EDMX, parse_metadata, ValueError, "$metadata refused: "),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_hostile_xml_is_refused_with_its_reason(entry: str, kind: str) -> None:
    template, parse, error, prefix = ENTRIES[entry]
    with pytest.raises(error) as caught:
        parse(document(kind, template))
    assert type(caught.value) in (error, XmlRefused)
    assert str(caught.value) == prefix + HOSTILE[kind][3] or (
        kind == "deep" and str(caught.value).startswith(prefix + "XML " + TOO_DEEP)
    )


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_the_same_documents_without_the_attack_parse(entry: str) -> None:
    template, parse, _, _ = ENTRIES[entry]
    parse(f'<?xml version="1.0"?>{template.format(value="42")}'.encode())


def test_nesting_up_to_the_limit_is_read() -> None:
    inner = "<x>" * (MAX_DEPTH - 3) + "v" + "</x>" * (MAX_DEPTH - 3)
    [record] = read_file("xml")(f"<r><a><nr>{inner}</nr></a></r>".encode())
    assert record.data["nr"]  # root, record, field and MAX_DEPTH - 3 levels: at the limit
    assert fromstring(f"<r>{'<x>' * (MAX_DEPTH - 1)}{'</x>' * (MAX_DEPTH - 1)}</r>".encode())
    with pytest.raises(XmlRefused, match=TOO_DEEP):
        fromstring(f"<r>{'<x>' * MAX_DEPTH}{'</x>' * MAX_DEPTH}</r>".encode())
    deep_rpc = RPC.format(value="").replace("<string></string>", "<array><data><value>" * 40)
    with pytest.raises(XmlRefused, match=TOO_DEEP):
        xmlrpc_values(deep_rpc.encode())


# -- SOAP: zeep parses with lxml, its DTD and entity guards switched on ---------------------------

WSDL = '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="urn:t">{value}'
WSDL += "</definitions>"


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/soap"


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_wsdl_is_refused(tmp_path: Path, kind: str) -> None:
    (tmp_path / "shop.wsdl").write_bytes(document(kind, WSDL))
    options = SoapChannelOptions.model_validate({"wsdl": "shop.wsdl", "endpoint": closed_url()})
    transport = SoapTransport("shop", options, tmp_path)
    health = transport.health()
    transport.close()
    assert not health.ok
    assert health.detail.startswith("channel shop: WSDL ")
    if kind == "deep":  # libxml2 bounds the depth at 256
        assert "Excessive depth" in health.detail, health.detail
    else:
        assert "DOCTYPE or entities (refused)" in health.detail, health.detail
