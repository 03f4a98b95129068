"""The command line, driven as a user would: init, check, sync, runs, records, rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from erpbridge.cli import app

CONFIG = """
channels:
  shop:
    system: folder
    options: {path: inbox}
flows:
  - name: products-in
    channel: shop
    entity: product
    direction: in
    source: {pattern: "*.csv"}
    mapping:
      sku: {from: Artikel, required: true}
      name: Bezeichnung
      weight: {from: Gewicht, transforms: [{decimal: ","}], unit: {from: g, to: kg}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ERPBRIDGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_sync_then_look_into_the_hub(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text(
        'Artikel,Bezeichnung,Gewicht\nA-1,Schraube,"1,5"\n,Mutter,2\n', encoding="utf-8"
    )

    code, out = run("sync", "products-in")
    assert code == 0, out
    assert "products-in" in out and "succeeded" in out
    assert "1 record(s) rejected" in out

    code, out = run("records", "product")
    assert code == 0 and "A-1" in out and "1 record(s)" in out
    code, out = run("records", "product", "--key", "A-1")
    assert code == 0 and '"weight": "0.0015"' in out and "created" in out and "p.csv:2" in out
    code, out = run("runs")
    assert code == 0 and "products-in" in out
    code, out = run("rejected")
    assert code == 0 and "p.csv:3" in out and "sku" in out and "required" in out
    assert (project / "hub.db").exists() is False and (project / "erpbridge.db").exists()


def test_sync_needs_a_flow_and_names_unknown_ones(project: Path) -> None:
    code, out = run("sync")
    assert code == 1 and "name one or more flows" in out
    code, out = run("sync", "nope")
    assert code == 2 and "no flow named 'nope'" in out and "products-in" in out


def test_sync_of_a_broken_config_exits_2_with_the_place(project: Path) -> None:
    (project / "erpbridge.yaml").write_text(CONFIG.replace("unit: {from: g", "unit: {from: gramm"))
    code, out = run("sync", "--all")
    assert code == 2
    assert "erpbridge.yaml:15 flows[0].mapping.weight.unit: unknown unit 'gramm'" in out


def test_a_failed_run_exits_1(project: Path) -> None:
    (project / "inbox").rmdir()
    code, out = run("sync", "--all")
    assert code == 1 and "failed" in out and "inbox" in out


def test_dry_run_changes_nothing(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text("Artikel,Bezeichnung,Gewicht\nA-1,S,1\n")
    code, out = run("sync", "--all", "--dry-run")
    assert code == 0 and "dry run" in out
    code, out = run("records", "product")
    assert "0 record(s)" in out
    assert (project / "inbox" / "p.csv").exists()


def test_init_writes_an_example_that_checks(project: Path) -> None:
    code, out = run("init", "new.yaml")
    assert code == 0, out
    code, out = run("check", "new.yaml")
    assert code == 0, out
    code, out = run("init", "new.yaml")
    assert code == 1 and "exists" in out


def test_search_reindex(project: Path) -> None:
    (project / "inbox" / "p.csv").write_text(
        'Artikel,Bezeichnung,Gewicht\nA-1,Schraube,"1,5"\nA-2,Mutter,2\n', encoding="utf-8"
    )
    assert run("sync", "products-in")[0] == 0
    code, out = run("search", "reindex", "product")
    assert code == 0 and "product: 2 record(s) indexed" in out
    code, out = run("search", "reindex", "order")
    assert code == 2 and "entity 'order' has no search fields" in out
    code, out = run("search", "reindex", "nope")
    assert code == 2 and "no entity named 'nope'" in out


def test_deliveries_state_is_the_ledger_vocabulary(project: Path) -> None:
    code, out = run("deliveries", "--help")
    assert code == 0 and "held" in out and "cancelled" in out
    code, out = run("deliveries", "--state", "held")
    assert code == 0, out
    code, out = run("deliveries", "--state", "lost")
    assert code == 2
    assert "'lost': no such state" in out and "in_flight, failed, held, delivered" in out


def test_version() -> None:
    from erpbridge import __version__

    code, out = run("--version")
    assert code == 0 and out.strip() == f"erpbridge {__version__}"


def test_an_unknown_flow_entity_or_state_is_an_error_naming_what_exists(project: Path) -> None:
    for args in (
        ("runs", "--flow", "product-in"),
        ("rejected", "--flow", "product-in"),
        ("deliveries", "--flow", "product-in"),
        ("retry", "--dead", "--flow", "product-in"),
        ("sync", "product-in"),
    ):
        code, out = run(*args)
        assert code == 2, (args, out)
        assert " ".join(out.split()) == (
            "error: no flow named 'product-in'; did you mean 'products-in'? (flows: products-in)"
        )
    code, out = run("records", "prodcut")
    assert code == 2
    assert "no entity named 'prodcut'; did you mean 'product'? (entities: customer, product" in (
        " ".join(out.split())
    )
    code, out = run("conflicts", "--resolve", "1", "--take", "channel")
    assert code == 2 and "--take 'channel': no such side (sides: source, hub)" in out


def test_help_texts_have_no_stray_markup() -> None:
    import typer

    def walk(command: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
        return found

    paths = walk(typer.main.get_command(app), [])
    assert len(paths) > 20
    for path in paths:
        code, out = run(*path, "--help")
        assert code == 0, path
        for stray in ("<bool>", "``", "[bold", "[/", "\b"):
            assert stray not in out, (path, stray, out)


def test_check_prints_a_hint_under_an_unknown_setting(project: Path) -> None:
    (project / "erpbridge.yaml").write_text(CONFIG.replace("{path: inbox}", "{pth: inbox}"))
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "erpbridge.yaml:5 channels.shop.options.path: required setting is missing"
    assert lines[1] == "erpbridge.yaml:5 channels.shop.options.pth: unknown setting"
    assert lines[2] == (
        "  did you mean 'path'? settings: archive, encoding, error, max_file_mb, "
        "min_age_seconds, path"
    )


def test_the_command_line_imports_no_engine_api_or_sqlalchemy_for_help() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import erpbridge.cli; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'pydantic', 'erpbridge.engine', "
        "'erpbridge.api', 'erpbridge.config.loader', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_runs_reads_only_the_hub_block_of_the_configuration(project: Path) -> None:
    import subprocess
    import sys

    # `runs` needs the store and the flow names: no connector, loader, model of the whole file
    # or record writer (issue 13: it starts in < 0.6 s).
    code = (
        "import atexit, sys\n"
        "from erpbridge.cli import main\n"
        "heavy = ('erpbridge.config.loader', 'erpbridge.config.channels', 'erpbridge.transports',"
        " 'erpbridge.transports.files.folder', 'erpbridge.store.records', 'sqlalchemy.orm',"
        " 'erpbridge.config.models', 'erpbridge.mapping.compiler')\n"
        "atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules)))\n"
        "sys.argv = ['erpbridge', 'runs']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"

    # A problem in a flow (an unknown transform, a bad direction) is `check`'s, not `runs`'s…
    for broken in (
        CONFIG.replace('{decimal: ","}', '{decimel: ","}'),
        CONFIG.replace("direction: in", "direction: sideways"),
    ):
        (project / "erpbridge.yaml").write_text(broken, encoding="utf-8")
        code_, out = run("runs")
        assert code_ == 0 and "runs" in out, out
        assert run("check")[0] == 2
    # …a problem in the hub: block or the YAML stops it with the file:line message of every
    # command.
    (project / "erpbridge.yaml").write_text(
        CONFIG.replace("flows:\n", "hub:\n  store_retry_s: -1\nflows:\n", 1), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith("erpbridge.yaml:"), result.stderr
    assert " hub.store_retry_s: " in result.stderr.splitlines()[0], result.stderr
    (project / "erpbridge.yaml").write_text("flows: [\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 2 and result.stderr.startswith("erpbridge.yaml:"), result.stderr


def test_a_deleted_record_shows_as_deleted(project: Path) -> None:
    marked = "    key: Artikel\n    delete_marker: {field: Op, value: D}\n    mapping:\n"
    config = CONFIG.replace("    mapping:\n", marked)
    (project / "erpbridge.yaml").write_text(config, encoding="utf-8")
    (project / "inbox" / "1.csv").write_text("Artikel,Bezeichnung,Gewicht,Op\nA-1,S,1,\n")
    assert run("sync", "products-in")[0] == 0
    (project / "inbox" / "2.csv").write_text("Artikel,Bezeichnung,Gewicht,Op\nA-1,,,D\n")
    code, out = run("sync", "products-in")
    assert code == 0 and "deleted" in out, out
    code, out = run("records", "product")
    assert code == 0 and "2 (deleted)" in out, out
    code, out = run("records", "product", "--key", "A-1")
    assert code == 0 and "DELETED" in out and "deleted" in out and "2.csv:2" in out, out


def test_sync_runs_its_flows_with_the_bulk_collector_settings_and_restores_them(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync` moves records in bulk: the cyclic collector runs less often during its runs
    (issue 18: 0.37 of 4.2 s CPU per 100 000 records went to it) and as before afterwards."""
    import gc

    from erpbridge.cli.common import BULK_GC_THRESHOLD
    from erpbridge.engine.runner import FlowRunner

    seen: list[tuple[int, ...]] = []
    real_run = FlowRunner.run

    def run_and_look(self: FlowRunner, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold())
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(FlowRunner, "run", run_and_look)
    before = gc.get_threshold()
    (project / "inbox" / "p.csv").write_text("Artikel,Bezeichnung\nA-1,Schraube\n", "utf-8")
    code, out = run("sync", "products-in")
    assert code == 0, out
    assert seen == [BULK_GC_THRESHOLD]
    assert gc.get_threshold() == before
