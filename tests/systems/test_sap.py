"""System type ``sap``: its presets load as flows on ``sap`` channels and compile, and a
channel of it speaks S/4HANA's OData V2 unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from erpbridge.config.loader import parse_config
from erpbridge.errors import ConfigError
from erpbridge.systems import system_types
from erpbridge.transports.odata.transport import ODataChannelOptions, ODataStreamOptions

ODATA_PRESETS = {
    "customers-in": "API_BUSINESS_PARTNER",
    "products-in": "API_PRODUCT_SRV",
    "prices-in": "API_SLSPRICINGCONDITIONRECORD_SRV",
    "orders-out": "API_SALES_ORDER_SRV",
    "order-status-in": "API_SALES_ORDER_SRV",
}
IDOC_PRESETS = {"orders-idoc-out", "orders-idoc-in", "customers-idoc-in", "invoices-idoc-in"}


def sap_config(flows: str, version: str | None = '"2"') -> str:
    setting = f"\n      version: {version}" if version else ""
    channels = "".join(
        f"""
  {api.lower()}:
    system: sap
    options:
      base_url: https://s4.example.com/sap/opu/odata/sap/{api}/{setting}
      auth: {{type: basic, username: ERPBRIDGE}}
    credentials: {{password: "${{SAP_PASSWORD}}"}}"""
        for api in sorted(set(ODATA_PRESETS.values()))
    )
    return f"channels:{channels}\nflows:\n{flows}"


def test_the_system_type_has_the_presets_of_the_issue() -> None:
    assert set(system_types()["sap"].presets()) == set(ODATA_PRESETS) | IDOC_PRESETS


def test_every_odata_preset_is_a_valid_flow_as_it_is(tmp_path: Path) -> None:
    flows = "".join(
        f"  - {{preset: {name}, channel: {api.lower()}}}\n" for name, api in ODATA_PRESETS.items()
    )
    loaded = parse_config(sap_config(flows), tmp_path / "c.yaml", env={"SAP_PASSWORD": "x"})

    assert [f.name for f in loaded.model.flows] == list(ODATA_PRESETS)
    assert loaded.flow("orders-out").trigger == "immediate"
    stream = loaded.streams["customers-in"]
    assert isinstance(stream, ODataStreamOptions)
    assert (stream.entity_set, stream.filter, stream.cursor_field) == (
        "A_BusinessPartner",
        "Customer ne ''",
        "LastChangeDateTime",
    )
    # The S/4HANA names each mapping reads, checked against the compiled mappings.
    order = loaded.mappings["order-status-in"](
        {"SalesOrder": "5000001", "SoldToParty": "1000001", "OverallSDProcessStatus": "B",
         "to_Item": [{"SalesOrderItem": "10", "Material": "TG11", "RequestedQuantity": "1",
                      "RequestedQuantityUnit": "ST"}]}
    )  # fmt: skip
    assert (order["status"], order["lines"][0]["unit"]) == ("processing", "pcs")
    price = loaded.mappings["prices-in"](
        {"SalesOrganization": "1010", "DistributionChannel": "10", "Material": "TG11",
         "Customer": None, "to_SlsPrcgConditionRecord": {"ConditionRateValue": "9.900",
                                                          "ConditionRateValueUnit": "EUR"}}
    )  # fmt: skip
    assert (price["price_list"], price["customer_code"], price["amount"]) == ("1010/10", "", "9.9")


def test_a_preset_key_given_in_the_flow_wins(tmp_path: Path) -> None:
    flows = (
        "  - preset: customers-in\n    name: partners-hourly\n    channel: api_business_partner\n"
        "    trigger: {interval: 1h}\n    source: {cursor_field: null}\n"
    )
    loaded = parse_config(sap_config(flows), tmp_path / "c.yaml", env={"SAP_PASSWORD": "x"})
    flow = loaded.flow("partners-hourly")
    assert flow.trigger.interval == "1h"  # type: ignore[union-attr]
    stream = loaded.streams["partners-hourly"]
    assert isinstance(stream, ODataStreamOptions) and stream.cursor_field is None
    assert flow.mapping is not None and "code" in flow.mapping  # the preset's own mapping


def test_an_odata_preset_on_a_file_channel_names_what_does_not_fit(tmp_path: Path) -> None:
    text = (
        "channels:\n  files: {system: sap, transport: folder, options: {path: x}}\n"
        "flows:\n  - {preset: products-in, channel: files}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml")
    assert "flows[0].source.entity_set: unknown setting" in str(caught.value)


def test_a_sap_channel_speaks_odata_v2_unless_told(tmp_path: Path) -> None:
    text = sap_config("  - {preset: products-in, channel: api_product_srv}\n", version=None)
    loaded = parse_config(text, tmp_path / "c.yaml", env={"SAP_PASSWORD": "x"})
    options = loaded.channel_options["api_product_srv"]
    assert isinstance(options, ODataChannelOptions) and options.version == "2"
