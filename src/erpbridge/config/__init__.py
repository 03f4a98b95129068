"""Configuration: the YAML file, its models and its validation.

The names below are imported on first use (PEP 562): :mod:`erpbridge.config.outline` (the file
read up to its schema) must not pay for the whole loader (every connector, the mappings).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from erpbridge.config.loader import LoadedConfig, load_config, parse_config
    from erpbridge.config.models import ChannelConfig, ConfigFile, CursorConfig, FlowConfig

__all__ = [
    "ChannelConfig",
    "ConfigFile",
    "CursorConfig",
    "FlowConfig",
    "LoadedConfig",
    "load_config",
    "parse_config",
]

_LAZY = {
    "ChannelConfig": "erpbridge.config.models",
    "ConfigFile": "erpbridge.config.models",
    "CursorConfig": "erpbridge.config.models",
    "FlowConfig": "erpbridge.config.models",
    "LoadedConfig": "erpbridge.config.loader",
    "load_config": "erpbridge.config.loader",
    "parse_config": "erpbridge.config.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'erpbridge.config' has no attribute {name!r}")
