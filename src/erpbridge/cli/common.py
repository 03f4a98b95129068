"""What every ``erpbridge`` command shares: the consoles, loading the configuration and store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from erpbridge.config.loader import LoadedConfig, load_config
from erpbridge.engine.credentials import apply_stored_credentials, stored_names
from erpbridge.errors import ConfigError, ErpbridgeError
from erpbridge.store import open_store
from erpbridge.store.secretbox import SecretBox

if TYPE_CHECKING:
    from erpbridge.api.context import Hub

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigOption",
    "console",
    "errors",
    "fail",
    "fill_credentials",
    "load",
    "serving_hub",
    "store",
]

console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="ERPBRIDGE_CONFIG", help="The configuration file."),
]
DEFAULT_CONFIG = Path("erpbridge.yaml")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; return the exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load(path: Path) -> LoadedConfig:
    """The configuration at ``path``, or every problem printed and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            errors.print(str(problem), highlight=False, soft_wrap=True, markup=False)
            if problem.hint:
                errors.print(f"  {problem.hint}", highlight=False, soft_wrap=True, markup=False)
        raise fail(f"{len(exc.problems)} problem(s) in {path}", 2) from None


def serving_hub(
    config: LoadedConfig,
    engine: Engine,
    *,
    wake: Callable[[], None] | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> Hub:
    """The API's hub for ``config``, or the reason it cannot serve (SAML metadata, …), exit 2."""
    from erpbridge.api import build_hub  # the API's modules only for the commands that serve

    try:
        return build_hub(config, engine, wake=wake, health=health)
    except ErpbridgeError as exc:
        raise fail(str(exc), 2) from None


def store(config: LoadedConfig) -> Engine:
    """The hub store of ``config``, opened and migrated, or a clear error and exit 1."""
    try:
        return open_store(config.database_url())
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None


def fill_credentials(config: LoadedConfig, *, required: bool = True) -> None:
    """Fill ``stored`` channel credentials in from the hub store (a no-op without any).

    When one was never set: exit 2 (``required``), or a warning (the API is how to set it).
    """
    if not any(stored_names(config, name) for name in config.model.channels):
        return
    engine = store(config)
    try:
        problems = apply_stored_credentials(
            config, engine, SecretBox.from_environment(config.base_dir)
        )
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None
    for problem in problems:
        errors.print(str(problem), highlight=False, soft_wrap=True, markup=False)
    if problems and required:
        raise fail("stored channel credentials are missing", 2)
