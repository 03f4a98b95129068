"""``erpbridge channels``: list the configured channels and test their connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from erpbridge.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    console,
    fail,
    fill_credentials,
    load,
)

if TYPE_CHECKING:
    from erpbridge.engine.diagnose import ChannelReport

__all__ = ["channels_app"]

channels_app = typer.Typer(help="List channels and test their connections.", no_args_is_help=True)


@channels_app.command(name="list")
def list_channels(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Show every channel: system type, transport and the flows that use it."""
    from rich.table import Table

    from erpbridge.systems import system_types

    loaded = load(config)
    systems = system_types()
    table = Table("channel", "system", "transport", "flows")
    for name, channel in loaded.model.channels.items():
        transport = channel.transport or systems[channel.system].transport
        flows = ", ".join(
            f"{f.name} ({f.direction})" for f in loaded.model.flows if f.channel == name
        )
        table.add_row(name, channel.system, transport, flows or "-")
    console.print(table)


@channels_app.command(name="test")
def test_channels(
    names: Annotated[list[str] | None, typer.Argument(help="Channels to test.")] = None,
    all_channels: Annotated[bool, typer.Option("--all", help="Test every channel.")] = False,
    no_sample: Annotated[
        bool, typer.Option("--no-sample", help="Check the connection only, read nothing.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Check reachability, authentication and a sample read; exit 1 when any check fails.

    Each failure is named by its kind: dns, refused, tls, timeout, auth (401), forbidden (403),
    schema (a missing table, field or entity set), protocol (an answer in the wrong shape).
    """
    loaded = load(config)
    chosen = list(loaded.model.channels) if all_channels else list(names or [])
    if not chosen:
        raise fail("name a channel or use --all", 2)
    unknown = [n for n in chosen if n not in loaded.model.channels]
    if unknown:
        known = ", ".join(loaded.model.channels) or "none"
        raise fail(f"no channel named {', '.join(unknown)} (channels: {known})", 2)
    fill_credentials(loaded)
    from erpbridge.engine.diagnose import check_channel

    reports = [check_channel(loaded, name, sample=not no_sample) for name in chosen]
    for report in reports:
        _print(report)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _print(report: ChannelReport) -> None:
    health = report.health
    mark = "[green]ok[/]" if health.ok else f"[bold red]{health.category}[/]"
    console.print(
        f"channel [bold]{report.channel}[/] ({report.transport}): {mark}", highlight=False
    )
    console.print(f"  {health.detail}", highlight=False, markup=False, soft_wrap=True)
    for sample in report.samples:
        mark = "[green]ok[/]" if sample.ok else f"[bold red]{sample.category}[/]"
        console.print(f"  flow [bold]{sample.flow}[/]: {mark}", highlight=False)
        console.print(f"    {sample.detail}", highlight=False, markup=False, soft_wrap=True)
