"""``erpbridge check`` says everything at once: a schema problem hides no later stage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from erpbridge.config import load_config
from erpbridge.errors import ConfigError, ConfigProblem


def problems(tmp_path: Path, text: str) -> list[ConfigProblem]:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.problems


def test_schema_transport_and_mapping_problems_in_one_run(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        hub:
          api: {token_ttl_s: 5}
        channels:
          shop:
            system: folder
            limits: {burst: 0}
            options: {path: inbox, max_file_mb: -1}
        flows:
          - name: customers_in
            channel: shop
            entity: customer
            direction: in
            trigger: {every: 5m}
            source: {sheet: 1}
            mapping: {code: {from: KdNr, transforms: [cents]}, name: Name1}
          - name: orders_in
            channel: shpo
            entity: order
            direction: in
        """,
    )
    assert [str(p) for p in found] == [
        "erpbridge.yaml:2 hub.api.token_ttl_s: Input should be greater than or equal to 60",
        "erpbridge.yaml:6 channels.shop.limits.burst: Input should be greater than or equal to 1",
        "erpbridge.yaml:13 flows[0].trigger.schedule: required setting is missing",
        "erpbridge.yaml:13 flows[0].trigger.every: unknown setting",
        "erpbridge.yaml:7 channels.shop.options.max_file_mb: Input should be greater than 0",
        "erpbridge.yaml:15 flows[0].mapping.code.transforms[0]: unknown transform 'cents'",
        "erpbridge.yaml:14 flows[0].source.sheet: unknown setting",
        "erpbridge.yaml:17 flows[1].channel: unknown channel 'shpo'; did you mean 'shop'? "
        "(channels: shop)",
    ]


def test_a_broken_channel_or_entity_is_not_also_unknown(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        entities:
          vehicle: {key: [vin], fields: {vin: {type: colour}}}
        channels:
          shop: {system: folder, options: {path: inbox}, limits: {burst: 0}, colour: red}
          erp: {options: {path: x}}
        flows:
          - {name: a, channel: erp, entity: vehicle, direction: in}
          - {name: b, channel: shop, entity: vehicle, direction: in, source: {sheet: 1}}
          - {name: a, channel: nowhere, entity: customer, direction: in}
        """,
    )
    assert [str(p) for p in found] == [
        "erpbridge.yaml:2 entities.vehicle.fields.vin.type: Input should be 'string', "
        "'integer', 'decimal', 'boolean', 'date', 'datetime', 'object', 'list' or 'json'",
        "erpbridge.yaml:4 channels.shop.limits.burst: Input should be greater than or equal to 1",
        "erpbridge.yaml:4 channels.shop.colour: unknown setting",
        "erpbridge.yaml:5 channels.erp.system: required setting is missing",
        "erpbridge.yaml:8 flows[1].source.sheet: unknown setting",
        "erpbridge.yaml:9 flows[2].name: duplicate flow name 'a'",
        "erpbridge.yaml:9 flows[2].channel: unknown channel 'nowhere' (channels: shop)",
    ]


def test_an_unknown_setting_gets_a_hint_with_the_known_ones(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        hub: {database: x}
        channels:
          shop: {system: folder, options: {path: inbox, max_file_md: 3}}
        """,
    )
    assert [(str(p), p.hint) for p in found] == [
        (
            "erpbridge.yaml:1 hub.database: unknown setting",
            "did you mean 'database_url'? settings: api, auto_upgrade, database_url, retention, "
            "run_lease_s, stale_backlog_s, store_retry_s",
        ),
        (
            "erpbridge.yaml:3 channels.shop.options.max_file_md: unknown setting",
            found[1].hint,
        ),
    ]
    assert found[1].hint.startswith("did you mean 'max_file_mb'? settings: ")


def test_a_bad_preset_hides_nothing_else(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        channels:
          erp: {system: tryton, options: {base_url: "http://x", database: d, username: u}}
        flows:
          - {preset: customers-from-trytn, channel: erp}
          - {name: b, channel: erp, entity: custmer, direction: in}
        """,
    )
    found = [p for p in found if p.path != "channels.erp.options"]  # no password: not this test
    assert str(found[0]).startswith(
        "erpbridge.yaml:4 flows[0].preset: system type 'tryton' has no preset "
        "'customers-from-trytn'; did you mean 'customers-from-tryton'? (known: "
    )
    assert [str(p) for p in found][1] == (
        "erpbridge.yaml:5 flows[1].entity: unknown entity 'custmer'; did you mean 'customer'? "
        f"(entities: {found[1].message.split('(entities: ')[1]}"
    )
    assert [str(p) for p in found][2:] == [
        "erpbridge.yaml:5 flows[1].source.model: required setting is missing"
    ]


def test_a_misspelt_mapping_key_gets_a_hint(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        channels:
          shop: {system: folder, options: {path: inbox}}
        flows:
          - {name: f, channel: shop, entity: customer, direction: in,
             mapping: {code: {from: x, tranforms: [trim]}}}
        """,
    )
    assert [str(p) for p in found] == [
        "erpbridge.yaml:5 flows[0].mapping.code.tranforms: unknown setting"
    ]
    assert found[0].hint.startswith("did you mean 'transforms'? settings: currency, default, ")
