"""Configuration: the YAML file, its models and its validation."""

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
