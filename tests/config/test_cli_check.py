"""``erpbridge check`` and ``erpbridge schema`` on real files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from erpbridge.cli import app
from erpbridge.config.schema import config_schema

GOOD = """\
channels:
  shop:
    system: folder
    options: {path: "${INBOX:-inbox}"}
entities:
  vehicle:
    key: [vin]
    fields: {vin: {required: true}}
flows:
  - name: customers_in
    channel: shop
    entity: customer
    direction: in
    mapping: {code: KdNr, name: Name1}
"""

BAD = """\
channels:
  shop:
    system: folder
    options: {path: inbox, max_file_mb: -1}
flows:
  - name: customers_in
    channel: shop
    entity: customer
    direction: in
    mapping:
      code: {from: KdNr, transforms: [cents]}
      name: "${NAME_COLUMN}"
"""

runner = CliRunner()


def test_check_ok(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(GOOD, encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.stderr
    # rich wraps the line at the terminal's width
    assert " ".join(result.stdout.split()) == (
        f"ok {path}: 1 channel(s), 1 flow(s), 1 declared entit(y/ies)"
    )
    assert result.stderr == ""


def test_check_reports_every_problem_on_stderr_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(BAD, encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)], env={"NAME_COLUMN": None})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "erpbridge.yaml:12 flows[0].mapping.name: environment variable NAME_COLUMN is not set",
        "erpbridge.yaml:4 channels.shop.options.max_file_mb: Input should be greater than 0",
        "erpbridge.yaml:11 flows[0].mapping.code.transforms[0]: unknown transform 'cents'",
        f"error: 3 problem(s) in {path}",
    ]


def test_check_reads_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(BAD.replace(", max_file_mb: -1", "").replace("[cents]", "[trim]"), "utf-8")
    assert runner.invoke(app, ["check", str(path)], env={"NAME_COLUMN": None}).exit_code == 2
    result = runner.invoke(app, ["check", str(path)], env={"NAME_COLUMN": "Name1"})
    assert result.exit_code == 0, result.stderr


def test_check_the_default_file_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(GOOD, encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)], env={"ERPBRIDGE_CONFIG": str(path)})
    assert result.exit_code == 0


def test_check_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}: cannot read the file: No such file or directory",
        f"error: 1 problem(s) in {path}",
    ]


def test_check_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text("channels:\n  shop: {system: folder\n", encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("erpbridge.yaml:3: malformed YAML: ")


def test_schema_prints_the_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == config_schema()  # ConfigFile's, typed per transport
    assert result.stderr == ""
