"""What every ``erpbridge`` command shares: the consoles, loading the configuration and store."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from erpbridge.errors import ConfigError, ErpbridgeError
from erpbridge.suggest import did_you_mean

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from erpbridge.api.context import Hub
    from erpbridge.config.loader import LoadedConfig
    from erpbridge.config.outline import Outline

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigOption",
    "actor",
    "console",
    "errors",
    "fail",
    "fill_credentials",
    "known_choice",
    "known_entity",
    "known_flow",
    "load",
    "outline",
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


def actor() -> str:
    """Who runs the command, as the admin audit names them: ``cli:<OS user>``."""
    import getpass

    return f"cli:{getpass.getuser()}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error; return the exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load(path: Path) -> LoadedConfig:
    """The configuration at ``path``, or every problem printed and exit code 2."""
    try:
        from erpbridge.config.loader import load_config

        return load_config(path)
    except ConfigError as exc:
        raise _refused(path, exc) from None


def outline(path: Path) -> Outline:
    """The configuration at ``path`` read up to its schema (for commands that only read the
    store: no connector is loaded), or every problem printed and exit code 2."""
    try:
        from erpbridge.config.outline import read_outline

        return read_outline(path)
    except ConfigError as exc:
        raise _refused(path, exc) from None


def _refused(path: Path, exc: ConfigError) -> typer.Exit:
    for problem in exc.problems:
        errors.print(str(problem), highlight=False, soft_wrap=True, markup=False)
        if problem.hint:
            errors.print(f"  {problem.hint}", highlight=False, soft_wrap=True, markup=False)
    return fail(f"{len(exc.problems)} problem(s) in {path}", 2)


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


def store(config: Outline) -> Engine:
    """The hub store of ``config``, opened (a new one created, an older schema upgraded only
    with ``hub.auto_upgrade``), or a clear error and exit 1."""
    try:
        from erpbridge.store import open_store

        return open_store(config.database_url(), upgrade=config.auto_upgrade())
    except ErpbridgeError as exc:
        raise fail(str(exc)) from None


def fill_credentials(config: LoadedConfig, *, required: bool = True) -> None:
    """Fill ``stored`` channel credentials in from the hub store (a no-op without any).

    When one was never set: exit 2 (``required``), or a warning (the API is how to set it).
    """
    from erpbridge.engine.credentials import apply_stored_credentials, stored_names
    from erpbridge.store.secretbox import SecretBox

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


def known_flow(config: Outline, name: str | None) -> None:
    """Exit 2 naming the configured flows when ``name`` (if given) is none of them."""
    flows = list(config.flow_names)
    if name is not None and name not in flows:
        raise fail(
            f"no flow named {name!r}{did_you_mean(name, flows)} ({_known('flows', flows)})", 2
        )


def known_entity(config: LoadedConfig, name: str) -> None:
    """Exit 2 naming the entities when ``name`` is none of them."""
    entities = list(config.entities)
    if name not in entities:
        raise fail(
            f"no entity named {name!r}{did_you_mean(name, entities)} "
            f"({_known('entities', entities)})",
            2,
        )


def known_choice(option: str, value: str | None, choices: Sequence[str], what: str) -> None:
    """Exit 2 naming the ``choices`` when ``value`` (if given) is none of them."""
    if value is not None and value not in choices:
        raise fail(
            f"{option} {value!r}: no such {what}{did_you_mean(value, choices)} "
            f"({_known(what + 's', choices)})",
            2,
        )


def _known(what: str, names: Sequence[str]) -> str:
    return f"{what}: {', '.join(names)}" if names else f"no {what} configured"


#: Allocations between two young collections while a command moves records in bulk (the
#: interpreter's default is 700). Measured on an IN sync of 100 000 orders: 1 630 collections
#: taking 0.37 s of its 4.2 s CPU, against 232 taking 0.07 s with these.
BULK_GC_THRESHOLD = (100_000, 50, 100)


@contextmanager
def bulk_gc() -> Iterator[None]:
    """A command that moves records in bulk (``sync``): what is loaded so far (configuration,
    store metadata) is frozen out of the collector's sight, and the collector runs less often.
    Records are freed by reference counting as always; only cycles wait a little longer."""
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(*BULK_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
