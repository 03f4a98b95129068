"""The public surface is deliberate: the package exports exactly these names."""

import erpbridge


def test_exported_members() -> None:
    assert set(erpbridge.__all__) == {
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
    }
    for name in erpbridge.__all__:
        assert hasattr(erpbridge, name)
