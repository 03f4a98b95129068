"""Every example configuration in ``examples/`` passes ``erpbridge check``, given the
environment variables it names (as a user exports them), and comes with a README."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from erpbridge.cli import app
from erpbridge.config.loader import load_config
from erpbridge.errors import ConfigError

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*/erpbridge.yaml"))
# ${NAME} without a default: what the user must export.
_NEEDED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def needed_env(path: Path) -> dict[str, str]:
    """A value for every variable the file's values name without a default (not comments)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            names.update(_NEEDED.findall(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return {name: f"example-{name.lower()}" for name in names}


def test_the_examples_are_found() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {
        "demo",
        "sap",
        "file-erp",
        "tryton",
        "mes",
        "warranty",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_loads(path: Path) -> None:
    config = load_config(path, env=needed_env(path))
    assert config.model.flows, "an example without flows shows nothing"
    for flow in config.model.flows:
        assert flow.name in config.mappings


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_passes_erpbridge_check(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in needed_env(path).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok ")


WITH_SECRETS = [p for p in EXAMPLES if needed_env(p)]


@pytest.mark.parametrize("path", WITH_SECRETS, ids=[p.parent.name for p in WITH_SECRETS])
def test_example_without_its_secrets_names_each_missing_variable(path: Path) -> None:
    env = needed_env(path)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    for name in env:
        assert f"environment variable {name} is not set" in str(caught.value)


@pytest.mark.parametrize("name", ["sap", "file-erp", "tryton", "mes", "warranty"])
def test_example_has_a_readme(name: str) -> None:
    readme = Path(__file__).parent.parent / "examples" / name / "README.md"
    assert "erpbridge.yaml" in readme.read_text(encoding="utf-8")
