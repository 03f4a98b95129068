"""erpbridge: an ERP integration hub. Channels and flows are declared in YAML; the hub moves
the data with ID cross-reference, mapping, an audit trail and nothing silently lost."""

from erpbridge.config import LoadedConfig, load_config
from erpbridge.engine import FlowRunner, RunResult
from erpbridge.errors import (
    ConfigError,
    DataError,
    ErpbridgeError,
    FatalError,
    RetriableError,
    SourceUnavailable,
)
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
