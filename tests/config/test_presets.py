"""Flow presets: a system type's ready-made flows, switched on with ``preset:`` and overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

from erpbridge.config.loader import parse_config
from erpbridge.errors import ConfigError
from erpbridge.systems import SystemType, system_types

PRESETS = """
presets:
  customers-in:
    entity: customer
    direction: in
    trigger: {interval: 15m}
    source: {pattern: "customers*.csv"}
    mapping:
      code: {from: Kundennr, required: true}
      name: {from: Name, required: true}
"""


@pytest.fixture
def erp_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "presets.yaml").write_text(PRESETS, encoding="utf-8")
    known = dict(system_types())
    known["fileerp"] = SystemType(
        "fileerp", "folder", "test", preset_file=tmp_path / "presets.yaml"
    )
    monkeypatch.setattr("erpbridge.config.loader.system_types", lambda: known)


def _config(flows: str) -> str:
    return "channels:\n  erp:\n    system: fileerp\n    options: {path: inbox}\nflows:\n" + flows


def test_a_preset_becomes_a_flow(erp_system: None, tmp_path: Path) -> None:
    loaded = parse_config(
        _config("  - {preset: customers-in, channel: erp}\n"), tmp_path / "c.yaml"
    )
    flow = loaded.flow("customers-in")
    assert flow.entity == "customer" and flow.trigger.interval == "15m"  # type: ignore[union-attr]
    assert loaded.mappings["customers-in"]({"Kundennr": "K1", "Name": "A"})["code"] == "K1"


def test_own_keys_win_and_name_can_change(erp_system: None, tmp_path: Path) -> None:
    text = _config(
        "  - preset: customers-in\n    name: kunden\n    channel: erp\n    trigger: manual\n"
    )
    loaded = parse_config(text, tmp_path / "c.yaml")
    assert loaded.flow("kunden").trigger == "manual"


def test_unknown_preset_names_the_known_ones(erp_system: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config("  - {preset: orders-in, channel: erp}\n"), tmp_path / "c.yaml")
    assert (
        "c.yaml:6 flows[0].preset: system type 'fileerp' has no preset 'orders-in' "
        "(known: customers-in)" in str(caught.value)
    )


def test_preset_without_a_known_channel(erp_system: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs the flow's channel"):
        parse_config(_config("  - {preset: customers-in, channel: nope}\n"), tmp_path / "c.yaml")


def test_source_merges_key_by_key(erp_system: None, tmp_path: Path) -> None:
    text = _config("  - preset: customers-in\n    channel: erp\n    source: {format: csv}\n")
    loaded = parse_config(text, tmp_path / "c.yaml")
    stream = loaded.streams["customers-in"]
    assert stream.pattern == "customers*.csv"  # type: ignore[attr-defined]
    assert stream.format == "csv"  # type: ignore[attr-defined]
