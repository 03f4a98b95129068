"""``erpbridge flows``: list the flows with their state, pause and resume them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from erpbridge.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    actor,
    console,
    known_flow,
    load,
    store,
)

__all__ = ["flows_app"]

flows_app = typer.Typer(help="Flows: list, pause, resume.", no_args_is_help=True)

FlowName = Annotated[str, typer.Argument(help="The flow's name.")]


@flows_app.command(name="list")
def list_flows(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Show every flow: channel, entity, direction, and whether it is paused (by whom, when)."""
    from erpbridge.store.switches import flow_switch

    loaded = load(config)
    engine = store(loaded)
    table = Table("flow", "channel", "entity", "direction", "state", "switched")
    with engine.connect() as conn:
        for flow in loaded.model.flows:
            switch = flow_switch(conn, flow.name)
            if not flow.enabled and (switch is None or not switch.enabled):
                state = "disabled"
            else:
                state = "paused" if switch is not None and not switch.enabled else "active"
            switched = (
                ""
                if switch is None
                else f"{switch.changed_at:%Y-%m-%d %H:%M:%S} {switch.changed_by}"
            )
            table.add_row(flow.name, flow.channel, flow.entity, flow.direction, state, switched)
    console.print(table)


def _switch(config_path: ConfigOption, name: str, enabled: bool) -> None:
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.switches import set_flow_enabled

    loaded = load(config_path)
    known_flow(loaded, name)
    engine = store(loaded)
    with engine.begin() as conn:
        set_flow_enabled(conn, name, enabled, actor())
    record_action(engine, actor(), None, "flow.resume" if enabled else "flow.pause", name)


@flows_app.command(name="pause")
def pause(name: FlowName, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Pause a flow in every process: no scheduled run, no sync, events refused (409); its
    deliveries wait pending. A run already going finishes."""
    _switch(config, name, enabled=False)
    console.print(f"flow {name} paused: resume it with `erpbridge flows resume {name}`")


@flows_app.command(name="resume")
def resume(name: FlowName, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Resume a paused flow: scheduled at its next fire time, its waiting deliveries go out."""
    _switch(config, name, enabled=True)
    console.print(f"flow {name} resumed")
