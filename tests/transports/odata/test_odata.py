"""OData pieces that need no server: literals, key predicates, dates, $metadata, error payloads."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from erpbridge.transports import load_transport
from erpbridge.transports.odata.client import ODataClient, odata_message
from erpbridge.transports.odata.edm import (
    EntityType,
    Property,
    as_datetime,
    from_wire,
    parse_datetime,
    parse_metadata,
    parse_time,
    same_value,
    to_wire,
)
from erpbridge.transports.odata.query import (
    after_keys,
    expand_clause,
    key_predicate,
    literal,
    query_string,
    string_literal,
)
from erpbridge.transports.odata.transport import (
    ODataChannelOptions,
    ODataStreamOptions,
    ODataTransport,
)

BP = EntityType(
    "S.A_BusinessPartner",
    ("BusinessPartner",),
    {
        "BusinessPartner": Property("Edm.String"),
        "LastChangeDateTime": Property("Edm.DateTimeOffset"),
    },
)
ITEM = EntityType(
    "S.A_SalesOrderItem",
    ("SalesOrder", "SalesOrderItem"),
    {"SalesOrder": Property("Edm.String"), "SalesOrderItem": Property("Edm.String")},
)
GUID = uuid.UUID("0b5c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3")
MOMENT = datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)


# -- literals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "4"])
def test_strings_are_quoted_with_inner_quotes_doubled(version: str) -> None:
    assert literal("O'Neil", "Edm.String", version) == "'O''Neil'"  # type: ignore[arg-type]
    assert literal("''", "Edm.String", version) == "''''''"  # type: ignore[arg-type]
    assert string_literal("a'b'c") == "'a''b''c'"
    assert literal(None, "Edm.String", version) == "null"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "edm", "v4", "v2"),
    [
        (GUID, "Edm.Guid", str(GUID), f"guid'{GUID}'"),
        (str(GUID).upper(), "Edm.Guid", str(GUID), f"guid'{GUID}'"),
        (MOMENT, "Edm.DateTimeOffset", "2024-05-01T08:00:00.123Z",
         "datetimeoffset'2024-05-01T08:00:00.123Z'"),
        ("2024-05-01T10:00:00+02:00", "Edm.DateTimeOffset", "2024-05-01T08:00:00Z",
         "datetimeoffset'2024-05-01T08:00:00Z'"),
        (date(2024, 5, 1), "Edm.Date", "2024-05-01", "2024-05-01"),
        (MOMENT, "Edm.DateTime", "datetime'2024-05-01T08:00:00.123'",
         "datetime'2024-05-01T08:00:00.123'"),
        (date(2024, 5, 1), "Edm.DateTime", "datetime'2024-05-01T00:00:00'",
         "datetime'2024-05-01T00:00:00'"),
        (time(8, 30), "Edm.TimeOfDay", "08:30:00", "time'PT08H30M00S'"),
        ("12.50", "Edm.Decimal", "12.50", "12.50M"),
        (Decimal("1E+2"), "Edm.Decimal", "1E+2", "1E+2M"),
        (12, "Edm.Int64", "12", "12L"),
        ("7", "Edm.Int32", "7", "7"),
        (1.5, "Edm.Double", "1.5", "1.5d"),
        (True, "Edm.Boolean", "true", "true"),
        ("false", "Edm.Boolean", "false", "false"),
    ],
)  # fmt: skip
def test_literals_differ_between_the_versions(value: object, edm: str, v4: str, v2: str) -> None:
    assert literal(value, edm, "4") == v4
    assert literal(value, edm, "2") == v2


def test_literal_types_are_inferred_without_metadata() -> None:
    assert literal(GUID, None, "2") == f"guid'{GUID}'"
    assert literal(MOMENT, None, "4") == "2024-05-01T08:00:00.123Z"
    assert literal(date(2024, 5, 1), None, "2") == "datetime'2024-05-01T00:00:00'"
    assert literal(2**40, None, "2") == "1099511627776L"
    assert literal("it's", None, "4") == "'it''s'"


def test_a_value_that_is_not_its_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not a number"):
        literal("abc", "Edm.Decimal", "4")
    with pytest.raises(ValueError):
        literal("not-a-guid", "Edm.Guid", "4")


# -- key predicates ------------------------------------------------------------------------------


def test_a_single_key_is_written_bare_and_a_compound_key_by_name() -> None:
    assert key_predicate({"BusinessPartner": "1000001"}, BP, "4") == "('1000001')"
    values = {"SalesOrder": "5000001", "SalesOrderItem": "10", "Material": "TG11"}
    assert key_predicate(values, ITEM, "2") == "(SalesOrder='5000001',SalesOrderItem='10')"


def test_key_values_are_escaped_and_url_encoded() -> None:
    assert key_predicate({"BusinessPartner": "O'Neil"}, BP, "4") == "('O''Neil')"
    # '/' would split the path, '#' end it, '&' and '%' mean something in URLs.
    assert key_predicate({"BusinessPartner": "A/B #1&2%"}, BP, "4") == "('A%2FB%20%231%262%25')"


def test_a_key_without_value_is_named() -> None:
    with pytest.raises(ValueError, match="key property SalesOrderItem has no value"):
        key_predicate({"SalesOrder": "1"}, ITEM, "4")


def test_keyset_filter_is_lexicographic() -> None:
    where = after_keys(["SalesOrder", "SalesOrderItem"], ["5'1", "10"], ITEM, "4")
    assert where == ("(SalesOrder gt '5''1') or (SalesOrder eq '5''1' and SalesOrderItem gt '10')")


def test_expand_paths_nest_in_v4_and_stay_paths_in_v2() -> None:
    paths = ["to_Item", "to_Partner/to_Address", "to_Partner/to_Contact"]
    assert expand_clause(paths, "2") == "to_Item,to_Partner/to_Address,to_Partner/to_Contact"
    assert expand_clause(paths, "4") == "to_Item,to_Partner($expand=to_Address,to_Contact)"


def test_query_values_encode_spaces_as_percent_20_and_keep_odata_syntax() -> None:
    text = query_string({"$filter": "Name eq 'A&B +1' and D ge 2024-05-01T08:00:00Z"})
    assert text == "$filter=Name%20eq%20'A%26B%20%2B1'%20and%20D%20ge%202024-05-01T08:00:00Z"


# -- dates and values on the wire ----------------------------------------------------------------


def test_v2_dates_and_v4_iso_texts_parse_into_utc_datetimes() -> None:
    expected = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert parse_datetime("/Date(1714550400000)/") == expected
    assert parse_datetime("/Date(1714550400000+0060)/") == expected  # the offset is a label
    assert parse_datetime("/Date(-86400000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    assert parse_datetime("2024-05-01T08:00:00Z") == expected
    assert parse_datetime("2024-05-01T10:00:00+02:00") == expected
    assert parse_datetime("2024-05-01T08:00:00") == expected  # no zone: UTC
    # SAP sends 7 fractional digits; Python keeps 6.
    assert parse_datetime("2024-05-01T08:00:00.1234567Z") == expected + timedelta(
        microseconds=123456
    )
    with pytest.raises(ValueError):
        parse_datetime("yesterday")


def test_times_parse_from_both_versions() -> None:
    assert parse_time("PT08H30M15S") == time(8, 30, 15)
    assert parse_time("PT8H") == time(8)
    assert parse_time("08:30:15.5") == time(8, 30, 15, 500000)


def test_from_wire_follows_the_metadata_types() -> None:
    v2_date = Property("Edm.DateTime", date_only=True)
    assert from_wire("/Date(1704844800000)/", v2_date) == date(2024, 1, 10)
    assert from_wire("2024-01-10", Property("Edm.Date")) == date(2024, 1, 10)
    assert from_wire("/Date(1714550400000+0000)/", Property("Edm.DateTimeOffset")) == datetime(
        2024, 5, 1, 8, tzinfo=UTC
    )
    assert from_wire("9007199254740993", Property("Edm.Int64")) == 9007199254740993
    assert from_wire("/Date(1)/", Property("Edm.String")) == "/Date(1)/"  # text stays text
    assert from_wire("12.500", Property("Edm.Decimal")) == "12.500"
    with pytest.raises(ValueError):
        from_wire("31.02.2024", Property("Edm.Date"))


def test_to_wire_writes_each_version_s_shape() -> None:
    offset = Property("Edm.DateTimeOffset")
    assert to_wire("2024-05-01T08:00:00Z", offset, "2") == "/Date(1714550400000+0000)/"
    assert to_wire("2024-05-01T08:00:00Z", offset, "4") == "2024-05-01T08:00:00Z"
    assert to_wire("2024-01-10", Property("Edm.DateTime"), "2") == "/Date(1704844800000)/"
    assert to_wire(12.5, Property("Edm.Decimal"), "2") == "12.5"
    assert to_wire("3", Property("Edm.Int32"), "4") == 3
    assert to_wire("true", Property("Edm.Boolean"), "4") is True
    assert to_wire(10, Property("Edm.String"), "4") == "10"
    with pytest.raises(ValueError, match="whole number"):
        to_wire("1.5", Property("Edm.Int32"), "4")


def test_same_value_compares_meaning_not_text() -> None:
    assert same_value(Property("Edm.Decimal"), "10.500", "10.5")
    assert not same_value(Property("Edm.Decimal"), "10.500", "10.6")
    offset = Property("Edm.DateTimeOffset")
    assert same_value(offset, "/Date(1714550400000+0000)/", "2024-05-01T08:00:00Z")
    assert not same_value(Property("Edm.String"), None, "")


def test_as_datetime_takes_naive_values_as_utc() -> None:
    assert as_datetime(datetime(2024, 5, 1, 8)) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    berlin = timezone(timedelta(hours=2))
    assert as_datetime(datetime(2024, 5, 1, 10, tzinfo=berlin)) == datetime(
        2024, 5, 1, 8, tzinfo=UTC
    )


# -- $metadata -----------------------------------------------------------------------------------

V4_METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="API_SALES_ORDER_SRV" Alias="SO" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityContainer Name="EntityContainer">
        <EntitySet Name="A_SalesOrder" EntityType="SO.A_SalesOrder"/>
        <EntitySet Name="A_SalesOrderItem" EntityType="API_SALES_ORDER_SRV.A_SalesOrderItem"/>
      </EntityContainer>
      <EntityType Name="Base"><Key><PropertyRef Name="SalesOrder"/></Key>
        <Property Name="SalesOrder" Type="Edm.String" Nullable="false"/>
      </EntityType>
      <EntityType Name="A_SalesOrder" BaseType="SO.Base">
        <Property Name="LastChangeDateTime" Type="Edm.DateTimeOffset"/>
        <Property Name="CreationDate" Type="Edm.Date"/>
        <NavigationProperty Name="to_Item" Type="Collection(SO.A_SalesOrderItem)"/>
      </EntityType>
      <EntityType Name="A_SalesOrderItem">
        <Key><PropertyRef Name="SalesOrder"/><PropertyRef Name="SalesOrderItem"/></Key>
        <Property Name="SalesOrder" Type="Edm.String"/>
        <Property Name="SalesOrderItem" Type="Edm.String"/>
        <NavigationProperty Name="to_SalesOrder" Type="SO.A_SalesOrder"/>
      </EntityType>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""

V2_METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"
    xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
    xmlns:sap="http://www.sap.com/Protocols/SAPData">
  <edmx:DataServices m:DataServiceVersion="2.0">
    <Schema Namespace="API_BUSINESS_PARTNER" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
      <EntityContainer Name="C" m:IsDefaultEntityContainer="true">
        <EntitySet Name="A_BusinessPartner" EntityType="API_BUSINESS_PARTNER.A_BusinessPartner"/>
        <EntitySet Name="A_BusinessPartnerAddress"
                   EntityType="API_BUSINESS_PARTNER.A_BusinessPartnerAddress"/>
      </EntityContainer>
      <EntityType Name="A_BusinessPartner">
        <Key><PropertyRef Name="BusinessPartner"/></Key>
        <Property Name="BusinessPartner" Type="Edm.String" MaxLength="10" Nullable="false"/>
        <Property Name="CreationDate" Type="Edm.DateTime" sap:display-format="Date"/>
        <Property Name="LastChangeDateTime" Type="Edm.DateTimeOffset"/>
        <NavigationProperty Name="to_BusinessPartnerAddress"
            Relationship="API_BUSINESS_PARTNER.BP_Address" FromRole="BP" ToRole="Address"/>
      </EntityType>
      <EntityType Name="A_BusinessPartnerAddress">
        <Key><PropertyRef Name="BusinessPartner"/><PropertyRef Name="AddressID"/></Key>
        <Property Name="BusinessPartner" Type="Edm.String"/>
        <Property Name="AddressID" Type="Edm.String"/>
      </EntityType>
      <Association Name="BP_Address">
        <End Role="BP" Type="API_BUSINESS_PARTNER.A_BusinessPartner" Multiplicity="1"/>
        <End Role="Address" Type="API_BUSINESS_PARTNER.A_BusinessPartnerAddress"
             Multiplicity="*"/>
      </Association>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""


def test_v4_metadata_gives_sets_keys_types_and_navigation() -> None:
    metadata = parse_metadata(V4_METADATA)
    assert metadata.version == "4"
    order = metadata.entity_type("A_SalesOrder")
    assert order is not None
    assert order.keys == ("SalesOrder",)  # inherited from the base type, through the alias
    assert order.properties["CreationDate"].type == "Edm.Date"
    assert order.navigation["to_Item"].type == "API_SALES_ORDER_SRV.A_SalesOrderItem"
    assert order.navigation["to_Item"].many
    item = metadata.entity_type("A_SalesOrderItem")
    assert item is not None and item.keys == ("SalesOrder", "SalesOrderItem")
    assert not item.navigation["to_SalesOrder"].many
    assert metadata.set_of("API_SALES_ORDER_SRV.A_SalesOrderItem") == "A_SalesOrderItem"
    assert metadata.entity_type("A_Nope") is None


def test_v2_metadata_resolves_associations_and_date_display_format() -> None:
    metadata = parse_metadata(V2_METADATA)
    assert metadata.version == "2"
    partner = metadata.entity_type("A_BusinessPartner")
    assert partner is not None
    assert partner.properties["CreationDate"] == Property("Edm.DateTime", date_only=True)
    nav = partner.navigation["to_BusinessPartnerAddress"]
    assert (nav.type, nav.many) == ("API_BUSINESS_PARTNER.A_BusinessPartnerAddress", True)


def test_metadata_with_a_doctype_or_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="DOCTYPE"):
        parse_metadata(b'<!DOCTYPE x [<!ENTITY a "b">]><edmx:Edmx/>')
    with pytest.raises(ValueError, match="not an EDMX"):
        parse_metadata(b"<html><body>Login</body></html>")
    with pytest.raises(ValueError, match="not XML"):
        parse_metadata(b"{}")


# -- error payloads ------------------------------------------------------------------------------


def _response(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_v4_error_payloads_become_code_and_message() -> None:
    body = {
        "error": {
            "code": "ASSERT_DATA_TYPE",
            "message": "Value is not a valid String(40)",
            "target": "FirstName",
            "details": [{"code": "E2", "message": "second problem"}],
        }
    }
    assert odata_message(_response(400, body)) == (
        "ASSERT_DATA_TYPE: Value is not a valid String(40) (target FirstName) "
        "(details: E2: second problem)"
    )


def test_v2_error_payloads_become_code_and_message() -> None:
    detail = {"code": "412", "message": {"lang": "en", "value": "Precondition Failed"}}
    body = {
        "error": {
            "code": "412",
            "message": {"lang": "en", "value": "Precondition Failed"},
            "target": "/#TRANSIENT#",
            "innererror": {"errordetails": [detail]},
        }
    }
    assert odata_message(_response(412, body)) == "412: Precondition Failed"


def test_other_error_bodies_are_shown_as_text() -> None:
    assert odata_message(httpx.Response(502, text="Bad  gateway\n")) == "Bad gateway"
    assert odata_message(httpx.Response(500)) == "(empty body)"
    page = "<html><head><style>b {}</style></head><body><h1>Logon failed</h1></body></html>"
    login = httpx.Response(401, text=page, headers={"Content-Type": "text/html"})
    assert odata_message(login) == "Logon failed"


# -- options and next links ----------------------------------------------------------------------


def _options(**extra: object) -> ODataChannelOptions:
    raw: dict[str, object] = {
        "base_url": "https://s4.example.com/sap/opu/odata/sap/API_BUSINESS_PARTNER",
        "auth": {"type": "basic", "username": "erp"},
        "credentials": {"password": SecretStr("x")},
        **extra,
    }
    return ODataChannelOptions.model_validate(raw)


def test_channel_options_take_the_version_as_a_number_and_check_credentials() -> None:
    assert _options(version=2).version == "2"
    with pytest.raises(ValidationError, match="version"):
        _options(version=3)
    with pytest.raises(ValidationError, match="needs credentials: password"):
        ODataChannelOptions.model_validate(
            {"base_url": "https://x/", "auth": {"type": "basic", "username": "erp"}}
        )


def test_the_entry_point_is_this_transport() -> None:
    assert load_transport("odata") is ODataTransport
    with pytest.raises(ValidationError, match="entity_set"):
        ODataStreamOptions.model_validate({"select": ["A"]})


def test_next_links_are_followed_on_the_channel_s_own_origin() -> None:
    client = ODataClient("s4", _options(), Path("."))
    try:
        assert client.follow("A_BusinessPartner?$skiptoken=3") == "A_BusinessPartner?$skiptoken=3"
        inner = "http://internal:8000/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_BusinessPartner?$skiptoken=3"
        assert client.follow(inner) == "A_BusinessPartner?$skiptoken=3"
        elsewhere = "http://internal:8000/other/A?$skiptoken=3"
        assert client.follow(elsewhere) == "https://s4.example.com/other/A?$skiptoken=3"
        assert client.url("A_BusinessPartner", {"$top": "2"}) == "A_BusinessPartner?$top=2"
    finally:
        client.close()


def test_channel_params_go_into_every_query() -> None:
    client = ODataClient("s4", _options(params={"sap-client": "100"}), Path("."))
    try:
        assert client.url("$metadata") == "$metadata?sap-client=100"
        assert client.url("A", {"$top": "1"}) == "A?$top=1&sap-client=100"
    finally:
        client.close()
