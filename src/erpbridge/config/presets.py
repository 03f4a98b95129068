"""A flow's ``preset:``: the system type's ready-made flow, merged under the flow's own keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from erpbridge.config.problems import Problems, did_you_mean
from erpbridge.config.validation import SetAside
from erpbridge.systems import SystemType

__all__ = ["expand_presets"]

_MERGED_PRESET_BLOCKS = ("source", "target")


def expand_presets(
    data: dict[str, Any], systems: Mapping[str, SystemType], problems: Problems, aside: SetAside
) -> None:
    """Replace each flow's ``preset:`` by the system type's preset, the flow's own keys winning.

    ``name`` defaults to the preset's name; a key given in the flow (``mapping``, ``trigger``…)
    replaces the preset's key as a whole, except ``source`` and ``target``, which merge key by key.
    """
    flows, channels = data.get("flows"), data.get("channels")
    if not isinstance(flows, list):
        return
    aside.flow_positions[:] = range(len(flows))
    if not isinstance(channels, dict):
        channels = {}
    failed: list[int] = []
    for index, flow in enumerate(flows):
        if not isinstance(flow, dict) or "preset" not in flow:
            continue
        loc = ("flows", index, "preset")
        name = flow["preset"]
        channel = channels.get(str(flow.get("channel")))
        system = systems.get(str(channel.get("system"))) if isinstance(channel, dict) else None
        if system is None:
            problems.add(loc, "a preset needs the flow's channel and its system type")
            failed.append(index)
            continue
        presets = system.presets()
        if not isinstance(name, str) or name not in presets:
            known = ", ".join(sorted(presets)) or "none"
            problems.add(
                loc,
                f"system type {system.name!r} has no preset {name!r}{did_you_mean(name, presets)}"
                f" (known: {known})",
            )
            failed.append(index)
            continue
        own = {k: v for k, v in flow.items() if k != "preset"}
        merged = {"name": name, **presets[name], **own}
        for block in _MERGED_PRESET_BLOCKS:
            # Transport options merge key by key: changing one partner or path keeps the rest.
            base, given = presets[name].get(block), own.get(block)
            if isinstance(base, dict) and isinstance(given, dict):
                merged[block] = {**base, **given}
        flows[index] = merged
    for index in reversed(failed):  # a flow without its preset is not checked further
        aside.drop_flow(flows, index)
