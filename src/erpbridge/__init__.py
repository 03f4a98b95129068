"""erpbridge: an ERP integration hub. Channels and flows are declared in YAML; the hub moves
the data with ID cross-reference, mapping, an audit trail and nothing silently lost.

The names below are imported on first use (PEP 562), so that ``erpbridge --help`` does not
pay for the engine, the store and the API.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from erpbridge.errors import (
    ConfigError,
    DataError,
    ErpbridgeError,
    FatalError,
    RetriableError,
    SourceUnavailable,
)

if TYPE_CHECKING:
    from erpbridge.config import LoadedConfig, load_config
    from erpbridge.engine import FlowRunner, RunResult
    from erpbridge.store import open_store

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "ErpbridgeError",
    "FatalError",
    "FlowRunner",
    "LoadedConfig",
    "RetriableError",
    "RunResult",
    "SourceUnavailable",
    "__version__",
    "load_config",
    "open_store",
]

_LAZY = {
    "LoadedConfig": "erpbridge.config",
    "load_config": "erpbridge.config",
    "FlowRunner": "erpbridge.engine",
    "RunResult": "erpbridge.engine",
    "open_store": "erpbridge.store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'erpbridge' has no attribute {name!r}")
