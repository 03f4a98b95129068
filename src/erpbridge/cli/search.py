"""``erpbridge search reindex``: rebuild the search helps' index of an entity."""

from __future__ import annotations

from typing import Annotated

import typer

from erpbridge.cli.common import DEFAULT_CONFIG, ConfigOption, console, fail, load, store

__all__ = ["search_app"]

search_app = typer.Typer(help="Search helps over master data.", no_args_is_help=True)


@search_app.command(name="reindex")
def reindex(
    entities: Annotated[
        list[str] | None, typer.Argument(help="Entities to reindex (default: every searchable).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Index every record afresh: after an entity's `search` fields changed, or for records
    stored before the hub had search helps."""
    from erpbridge.store.search import SearchSpec
    from erpbridge.store.searchindex import rebuild_index

    loaded = load(config)
    engine = store(loaded)
    names = list(entities or []) or [
        name for name in loaded.entities if loaded.entities[name].search
    ]
    for name in names:
        try:
            spec = SearchSpec.of(name, loaded.entities[name])
        except KeyError:
            raise fail(f"no entity named {name!r}", 2) from None
        if spec is None:
            raise fail(f"entity {name!r} has no search fields", 2)
        with engine.begin() as conn:
            count = rebuild_index(conn, spec)
        console.print(f"{name}: {count} record(s) indexed")
