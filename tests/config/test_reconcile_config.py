"""A flow's ``reconcile:`` block: compiled when right, every mistake named with its place."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from erpbridge.config import load_config
from erpbridge.errors import ConfigError

CONFIG = """\
entities:
  account:
    key: [code]
    fields: {code: {type: string, required: true}, name: string, balance: decimal}
channels:
  erp: {system: sql, options: {url: "sqlite:///erp.db"}}
  out: {system: sql, transport: sqlwrite, options: {url: "sqlite:///out.db"}}
flows:
  - name: accounts-in
    channel: erp
    entity: account
    direction: in
    source: {table: accounts}
    mapping: {code: code, name: name, balance: saldo}
    reconcile: {amounts: [balance], schedule: "0 2 * * *"}
  - name: accounts-out
    channel: out
    entity: account
    direction: out
    target: {table: accounts, key: [code]}
    reconcile: %s
"""


def _load(tmp_path: Path, block: str) -> object:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(textwrap.dedent(CONFIG % block), encoding="utf-8")
    return load_config(path)


def test_blocks_compile_with_their_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, "{channel: erp, source: {table: accounts_out}, fields: [name]}")
    plans = config.reconcile  # type: ignore[attr-defined]
    inbound, outbound = plans["accounts-in"], plans["accounts-out"]
    assert (inbound.channel, inbound.fields, inbound.amounts) == ("erp", ("name", "balance"),
                                                                  ("balance",))  # fmt: skip
    assert inbound.schedule is not None and inbound.schedule.cron == "0 2 * * *"
    assert inbound.mapping({"code": "A", "name": "n", "saldo": "1.5"})["balance"] is not None
    assert (outbound.channel, outbound.fields, outbound.schedule) == ("erp", ("name",), None)


@pytest.mark.parametrize(
    ("block", "where", "message"),
    [
        ("{fields: [name]}", "flows[1].reconcile.source", "give the stream options"),
        (
            "{channel: erp, source: {table: t}, fields: [nme]}",
            "flows[1].reconcile.fields[0]",
            "account has no field 'nme'",
        ),
        (
            "{channel: erp, source: {table: t}, amounts: [name]}",
            "flows[1].reconcile.amounts[0]",
            "'name' is a string field",
        ),
        (
            "{channel: nowhere, source: {table: t}}",
            "flows[1].reconcile.channel",
            "unknown channel 'nowhere'",
        ),
        ("{channel: erp, source: {tabel: t}}", "flows[1].reconcile.source.tabel", ""),
        (
            "{channel: erp, source: {table: t}, schedule: '61 * * * *'}",
            "flows[1].reconcile.schedule",
            "invalid cron expression",
        ),
        (
            "{channel: erp, source: {table: t}, schedule: '0 2 * * *', interval: 1d}",
            "flows[1].reconcile",
            "not both",
        ),
    ],
)
def test_mistakes_are_named_with_their_place(
    tmp_path: Path, block: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, block)
    found = [str(p) for p in refused.value.problems]
    assert any(f" {where}:" in line and message in line for line in found), found
