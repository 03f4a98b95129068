"""The SOAP transport without a service: options, templates, cursors, error translation, and a
real WSDL file parsed by zeep (service/port choice, endpoint override, a refused endpoint).

The flows against a running SOAP service are in ``tests/integration/test_soap.py``."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3.exceptions
from pydantic import SecretStr, ValidationError
from zeep import exceptions as zeep_errors

from erpbridge.config.loader import parse_config
from erpbridge.errors import ConfigError, FatalError, RetriableError, SourceUnavailable
from erpbridge.transports import Transport, load_transport
from erpbridge.transports.base import OutgoingRecord, Writer
from erpbridge.transports.soap.errors import (
    SoapFailed,
    SoapRetriable,
    SoapUnavailable,
    category_of,
    scrub_url,
    translate,
)
from erpbridge.transports.soap.transport import (
    SoapChannelOptions,
    SoapStreamOptions,
    SoapTargetOptions,
    SoapTransport,
)
from erpbridge.transports.soap.values import (
    decode_cursor,
    encode_cursor,
    highest,
    lookup,
    placeholders,
    plain,
    render,
)

TNS = "urn:test:shop"
WSDL = f"""<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{TNS}" targetNamespace="{TNS}">
  <types>
    <xs:schema targetNamespace="{TNS}" elementFormDefault="qualified">
      <xs:element name="Ping"><xs:complexType><xs:sequence>
        <xs:element name="text" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="PingResponse"><xs:complexType><xs:sequence>
        <xs:element name="echo" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType></xs:element>
    </xs:schema>
  </types>
  <message name="PingIn"><part name="parameters" element="tns:Ping"/></message>
  <message name="PingOut"><part name="parameters" element="tns:PingResponse"/></message>
  <portType name="PingPort">
    <operation name="Ping"><input message="tns:PingIn"/><output message="tns:PingOut"/></operation>
  </portType>
  <binding name="PingBinding" type="tns:PingPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Ping">
      <soap:operation soapAction="Ping"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="Live">
    <port name="Main" binding="tns:PingBinding"><soap:address location="{{live}}"/></port>
  </service>
  <service name="Test">
    <port name="Main" binding="tns:PingBinding"><soap:address location="{{test}}"/></port>
    <port name="Backup" binding="tns:PingBinding"><soap:address location="{{backup}}"/></port>
  </service>
</definitions>
"""


def closed_url() -> str:
    """An address where nothing listens (a port that was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/soap"


def options(**values: Any) -> SoapChannelOptions:
    return SoapChannelOptions.model_validate({"wsdl": "shop.wsdl", **values})


@pytest.fixture
def wsdl_dir(tmp_path: Path) -> Path:
    """``shop.wsdl`` in ``tmp_path``; every address in it is refused."""
    text = WSDL.format(live=closed_url(), test=closed_url(), backup=closed_url())
    (tmp_path / "shop.wsdl").write_text(text, encoding="utf-8")
    return tmp_path


def record(data: dict[str, Any], key: str = "K1") -> OutgoingRecord:
    return OutgoingRecord(7, "customer", key, 2, f"flow|1|2|{key}", data)


# -- registration and options --------------------------------------------------------------------


def test_registered_as_a_reading_and_writing_transport() -> None:
    cls = load_transport("soap")
    assert cls is SoapTransport
    transport = SoapTransport("shop", options(), Path("."))
    assert isinstance(transport, Transport)
    assert isinstance(transport, Writer)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth": "basic", "username": "u"}, "auth basic needs the credential `password`"),
        ({"auth": "wsse", "credentials": {"password": "x"}}, "auth wsse needs `username`"),
        ({"client_key": "k.pem"}, "`client_key` needs `client_cert`"),
        ({"endpoint": "ftp://host/x"}, "must be an http:// or https:// URL"),
        ({"auth": "token"}, "Input should be 'none', 'basic' or 'wsse'"),
    ],
)
def test_channel_options_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        options(**values)


def test_the_password_stays_out_of_reprs_and_errors() -> None:
    good = options(auth="basic", username="u", credentials={"password": "hunter2-secret"})
    assert "hunter2-secret" not in repr(good)
    with pytest.raises(ValidationError) as caught:
        options(auth="basic", credentials={"password": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cursor_field": "modified_at"}, "`cursor_field` needs a `{cursor}` placeholder"),
        ({"params": {"since": "{cursor}"}}, "`{cursor}` in params needs `cursor_field`"),
        ({"params": {"since": "{since}"}}, "unknown placeholder.*since"),
        ({"safety_window": 60}, "`safety_window` needs `cursor_field`"),
        ({"params": {"page": "{page}"}}, "paging without `{limit}` needs `page_size`"),
        ({"cursor": {"column": "x", "tiebreaker": "id"}}, "source.cursor_field"),
    ],
)
def test_stream_options_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SoapStreamOptions.model_validate({"operation": "List", **values})


def test_target_options_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder.*rec"):
        SoapTargetOptions(operation="Save", params={"c": "{rec}"})
    with pytest.raises(ValidationError, match="`customer` is both the `argument` and in `params`"):
        SoapTargetOptions(operation="Save", argument="customer", params={"customer": "{record}"})


def test_a_configuration_names_the_place_of_a_soap_problem(tmp_path: Path) -> None:
    text = """
channels:
  erp:
    system: soap
    options: {wsdl: erp.wsdl, auth: basic, username: bridge}
    credentials: {password: "${ERP_PW}"}
flows:
  - name: customers-in
    channel: erp
    entity: customer
    direction: in
    source: {operation: ListCustomers, params: {since: "{cursor}"}}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    target: {operation: UpsertCustomer, params: {c: "{payload}"}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "erpbridge.yaml", env={"ERP_PW": "pw"})
    problems = [str(p) for p in caught.value.problems]
    assert any(
        "flows[0].source" in p and "`{cursor}` in params needs `cursor_field`" in p
        for p in problems
    )
    assert any(
        "flows[1].target" in p and "unknown placeholder(s) in params: payload" in p
        for p in problems
    )


# -- templates, paths, values --------------------------------------------------------------------


def test_render_keeps_whole_placeholders_typed_and_formats_embedded_ones() -> None:
    since = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
    template = {
        "changedSince": "{cursor}",
        "paging": {"offset": "{offset}", "limit": "{limit}"},
        "filter": ["after {cursor}", "{{literal}}", 5],
    }
    assert render(template, {"cursor": since, "offset": 20, "limit": 10}) == {
        "changedSince": since,
        "paging": {"offset": 20, "limit": 10},
        "filter": ["after 2024-05-01T06:30:00+00:00", "{literal}", 5],
    }
    assert placeholders(template) == {"cursor", "offset", "limit"}


def test_render_reaches_into_the_record() -> None:
    values = {"record": {"code": "C1", "address": {"city": "Bonn"}}, "key": "C1", "version": 3}
    rendered = render({"id": "{record.code}", "where": "{record.address.city}/v{version}"}, values)
    assert rendered == {"id": "C1", "where": "Bonn/v3"}
    assert render("{record}", values) == values["record"]
    with pytest.raises(FatalError, match=r"unknown placeholder \{nope\}"):
        render("{nope}", values)


def test_lookup_follows_dots_and_list_indexes() -> None:
    data = {"page": {"items": [{"id": 1}, {"id": 2}]}, "a.b": "literal"}
    assert lookup(data, "page.items.1.id") == 2
    assert lookup(data, "a.b") == "literal"
    assert lookup(data, "page.missing.id") is None
    assert lookup(data, "page.items.5") is None
    assert lookup(data, None) is data


def test_plain_turns_zeep_objects_into_dicts_and_keeps_typed_values() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    answer = {"total": 1, "items": [{"price": Decimal("9.90"), "at": moment, "raw": None}]}
    assert plain(answer) == answer


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 1, 6, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 6, 30),
        date(2024, 5, 1),
        Decimal("10.25"),
        42,
        "000123",
    ],
)
def test_a_cursor_survives_its_stored_form(value: Any) -> None:
    stored = encode_cursor(value, "modified_at")
    assert decode_cursor(stored, "modified_at") == value
    assert type(decode_cursor(stored, "modified_at")) is type(value)


def test_a_cursor_of_another_field_or_kind_is_refused() -> None:
    stored = encode_cursor(5, "seq")
    with pytest.raises(FatalError, match=r"stored cursor is for field seq.*modified_at"):
        decode_cursor(stored, "modified_at")
    with pytest.raises(FatalError, match="is not a SOAP cursor"):
        decode_cursor({"column": "x", "value": "1"}, "seq")
    with pytest.raises(FatalError, match="holds bool"):
        encode_cursor(True, "flag")
    with pytest.raises(FatalError, match="cannot be compared"):
        highest([datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)], "modified_at")
    assert highest([None, 3, 1], "seq") == 3


# -- error translation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "subcodes", "kind", "category"),
    [
        ("soap11env:Client.NotFound", None, SoapFailed, "error"),
        ("Client", None, SoapFailed, "error"),
        ("soap:Sender", None, SoapFailed, "error"),
        ("senv:Server.Locked", None, SoapRetriable, "error"),
        ("soap:Receiver", None, SoapRetriable, "error"),
        ("wsse:FailedAuthentication", None, SoapFailed, "auth"),
        ("soap:Sender", ["{urn:x}InvalidSecurityToken"], SoapFailed, "auth"),
        ("soap:VersionMismatch", None, SoapFailed, "protocol"),
    ],
)
def test_soap_faults_by_code(
    code: str, subcodes: list[str] | None, kind: type[Exception], category: str
) -> None:
    fault = zeep_errors.Fault("customer 42 is locked", code=code, subcodes=subcodes)
    error = translate("channel erp: Save", fault)
    assert type(error) is kind
    assert category_of(error) == category  # type: ignore[arg-type]
    local = code.rpartition(":")[2]
    assert str(error) == f"channel erp: Save: SOAP fault {local}: customer 42 is locked"


def test_a_fault_without_code_is_an_http_error_without_fault() -> None:
    fault = zeep_errors.Fault("Unknown fault occured", code=None, detail=b"<x>busy</x>")
    error = translate("channel erp: Save", fault)
    assert isinstance(error, RetriableError)
    assert str(error) == (
        "channel erp: Save: the service answered an HTTP error without a SOAP fault: busy"
    )


@pytest.mark.parametrize(
    ("status", "kind", "category"),
    [
        (401, FatalError, "auth"),
        (403, FatalError, "forbidden"),
        (404, FatalError, "schema"),
        (400, FatalError, "error"),
        (429, RetriableError, "error"),
        (500, RetriableError, "error"),
        (503, RetriableError, "error"),
        (504, RetriableError, "timeout"),
        (200, FatalError, "protocol"),
    ],
)
def test_http_statuses(status: int, kind: type[Exception], category: str) -> None:
    body = b"<html><body><h1>Oops</h1><script>x()</script><p>try &amp; again</p></body></html>"
    error = translate(
        "channel erp: Save", zeep_errors.TransportError(status_code=status, content=body)
    )
    assert isinstance(error, kind)
    assert category_of(error) == category  # type: ignore[arg-type]
    assert ": Oops try & again" in str(error)
    assert "x()" not in str(error)


def _connection_error(cause: BaseException) -> requests.ConnectionError:
    wrapped = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection")
    wrapped.__cause__ = cause
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", wrapped))


@pytest.mark.parametrize(
    ("exc", "category", "text"),
    [
        (_connection_error(ConnectionRefusedError(111, "refused")), "refused", "refused"),
        (_connection_error(socket.gaierror(-2, "Name or service not known")), "dns", "host name"),
        (requests.ConnectTimeout("slow"), "timeout", "no answer in time"),
        (requests.exceptions.SSLError("certificate verify failed"), "tls", "TLS failed"),
    ],
)
def test_network_failures_are_passing(exc: Exception, category: str, text: str) -> None:
    error = translate("channel erp: Save at http://h/", exc)
    assert isinstance(error, SourceUnavailable)
    assert category_of(error) == category  # type: ignore[arg-type]
    assert text in str(error)


def test_malformed_answers_and_unknown_errors() -> None:
    syntax = zeep_errors.XMLSyntaxError("Opening and ending tag mismatch")
    assert category_of(translate("w", syntax)) == "protocol"  # type: ignore[arg-type]
    dtd = zeep_errors.DTDForbidden("html", None, None)
    assert "DOCTYPE" in str(translate("w", dtd))
    assert translate("w", KeyError("a bug")) is None


def test_urls_in_messages_hide_users_and_query_values() -> None:
    assert scrub_url("https://bob:pw@erp/ws?wsdl") == "https://erp/ws?wsdl"
    assert scrub_url("https://erp/ws?wsdl&token=abc") == "https://erp/ws?wsdl&token=…"


# -- a real WSDL file ----------------------------------------------------------------------------


def address_of(wsdl_dir: Path, port: str, nth: int = 0) -> str:
    text = (wsdl_dir / "shop.wsdl").read_text()
    return text.split(f'<port name="{port}"')[1 + nth].split('location="')[1].split('"')[0]


@pytest.mark.parametrize(
    ("values", "port", "nth"),
    [
        ({}, "Main", 0),
        ({"service": "Test"}, "Main", 1),
        ({"service": "Test", "port": "Backup"}, "Backup", 0),
    ],
)
def test_the_first_service_and_port_unless_named(
    wsdl_dir: Path, values: dict[str, str], port: str, nth: int
) -> None:
    transport = SoapTransport("shop", options(**values), wsdl_dir)
    health = transport.health()
    transport.close()
    assert (health.ok, health.category) == (False, "refused")
    assert health.detail == (
        f"channel shop: endpoint {address_of(wsdl_dir, port, nth)}: "
        "connection refused (nothing listens there)"
    )


def test_a_service_or_port_the_wsdl_lacks(wsdl_dir: Path) -> None:

    transport = SoapTransport("shop", options(service="Nope"), wsdl_dir)
    health = transport.health()
    assert (health.ok, health.category) == (False, "schema")
    assert health.detail.endswith("has no service Nope (services: Live, Test)")
    transport = SoapTransport("shop", options(service="Test", port="Spare"), wsdl_dir)
    assert "service Test has no port Spare (ports: Main, Backup)" in transport.health().detail


def test_a_refused_endpoint_is_passing_for_reads_and_writes(wsdl_dir: Path) -> None:
    endpoint = closed_url()
    transport = SoapTransport("shop", options(endpoint=endpoint), wsdl_dir)
    try:
        with pytest.raises(SoapUnavailable) as caught:
            transport.write(SoapTargetOptions(operation="Ping"), [record({"text": "hi"})])
        assert str(caught.value) == (
            f"channel shop: Ping at {endpoint}, customer K1 v2 (delivery 7): "
            "connection refused (nothing listens there)"
        )
        stream = SoapStreamOptions(operation="Ping", params={"text": "x"})
        with pytest.raises(SoapUnavailable, match=f"Ping at {endpoint}: connection refused"):
            list(transport.read(stream, None, 10, frozenset()))
    finally:
        transport.close()


def test_an_operation_the_wsdl_lacks_is_named_with_the_ones_it_has(wsdl_dir: Path) -> None:
    transport = SoapTransport("shop", options(operations=["Ping", "Pong"]), wsdl_dir)
    try:
        health = transport.health()
        assert (health.ok, health.category) == (False, "schema")
        assert "has no operation(s) Pong (operations: Ping)" in health.detail
        with pytest.raises(FatalError, match=r"has no operation Pong \(operations: Ping\)"):
            list(transport.read(SoapStreamOptions(operation="Pong"), None, 10, frozenset()))
        with pytest.raises(FatalError, match="has no operation Pong"):
            transport.write(SoapTargetOptions(operation="Pong"), [record({})])
    finally:
        transport.close()


def test_parameters_the_operation_does_not_take(wsdl_dir: Path) -> None:
    transport = SoapTransport("shop", options(endpoint=closed_url()), wsdl_dir)
    try:
        with pytest.raises(FatalError, match=r"the parameters do not fit: .*'colour'"):
            transport.write(SoapTargetOptions(operation="Ping"), [record({"colour": "red"})])
    finally:
        transport.close()


def test_a_wsdl_path_is_relative_to_the_configuration(wsdl_dir: Path, tmp_path: Path) -> None:
    elsewhere = SoapTransport("shop", options(), wsdl_dir / "sub")
    health = elsewhere.health()
    assert (health.ok, health.category) == (False, "error")
    assert health.detail == f"channel shop: WSDL {wsdl_dir / 'sub' / 'shop.wsdl'}: file not found"


def test_secrets_never_reach_a_message(wsdl_dir: Path) -> None:
    secret = "s3cr3t-passw0rd"
    transport = SoapTransport(
        "shop",
        options(
            wsdl=f"http://bridge:{secret}@127.0.0.1:1/shop?wsdl",
            auth="basic",
            username="bridge",
            credentials={"password": SecretStr(secret)},
        ),
        wsdl_dir,
    )
    health = transport.health()
    assert not health.ok
    assert secret not in health.detail
    assert "http://127.0.0.1:1/shop?wsdl" in health.detail
