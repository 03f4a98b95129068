"""Serving the API: ``erpbridge api`` (API only, for scaled-out shapes) and the HTTP part of
``erpbridge run``, over HTTP or HTTPS (optionally asking for client certificates)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from erpbridge.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    console,
    fail,
    fill_credentials,
    load,
    serving_hub,
    store,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI
    from sqlalchemy import Engine

    from erpbridge.api.context import Hub
    from erpbridge.config.loader import LoadedConfig
    from erpbridge.engine.reloader import Reloader

__all__ = [
    "LogFormatOption",
    "LogLevelOption",
    "MetricsListenOption",
    "TlsCert",
    "TlsClientCa",
    "TlsKey",
    "api",
    "observability",
    "reloading",
    "serve",
    "tls_options",
]

TlsCert = Annotated[
    Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM); else hub.api.")
]
TlsKey = Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")]
TlsClientCa = Annotated[
    Path | None, typer.Option(help="Ask for client certificates signed by this CA (mutual TLS).")
]


LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="ERPBRIDGE_LOG_FORMAT",
        help="Log lines as 'json' (one object a line) or 'console'.",
    ),
]
LogLevelOption = Annotated[
    str,
    typer.Option(
        "--log-level",
        envvar="ERPBRIDGE_LOG_LEVEL",
        help="Lowest level logged: debug, info, warning, error.",
    ),
]
MetricsListenOption = Annotated[
    str | None,
    typer.Option(
        "--metrics-listen",
        envvar="ERPBRIDGE_METRICS_LISTEN",
        help="Also serve Prometheus /metrics WITHOUT authentication on this host:port "
        "(a private address; the API's /metrics needs the read scope).",
        show_default=False,
    ),
]


def observability(
    config: LoadedConfig,
    engine: Engine,
    log_format: str,
    log_level: str,
    metrics_listen: str | None,
) -> None:
    """Set up the logs of a serving process (format, level, known secrets) and, when asked, a
    separate metrics listener; a bad option is exit 2."""
    from erpbridge.observe.logs import LOG_FORMATS, LOG_LEVELS, add_secrets, configure_logging

    if log_format not in LOG_FORMATS:
        raise fail(f"--log-format {log_format!r}: use one of {', '.join(LOG_FORMATS)}", 2)
    if log_level.lower() not in LOG_LEVELS:
        raise fail(f"--log-level {log_level!r}: use one of {', '.join(LOG_LEVELS)}", 2)
    configure_logging("json" if log_format == "json" else "console", log_level.lower())
    add_secrets(config.secret_values())
    if metrics_listen is not None:
        from erpbridge.observe.metrics import MetricsListenError, listen

        try:
            address = listen(metrics_listen, engine)
        except MetricsListenError as exc:
            raise fail(str(exc), 2) from None
        console.print(f"metrics at http://{address}/metrics (no authentication)")


def tls_options(
    config: LoadedConfig, cert: Path | None, key: Path | None, client_ca: Path | None
) -> dict[str, Any]:
    """uvicorn's TLS options from the command line, else from ``hub.api``; checked up front."""
    from erpbridge.api.tls import uvicorn_tls_options

    settings = config.model.hub.api

    def resolve(given: Path | None, configured: str | None) -> str | None:
        if given is not None:
            return str(given)
        return str(config.base_dir / configured) if configured else None

    cert_file = resolve(cert, settings.tls_cert)
    key_file = resolve(key, settings.tls_key)
    ca_file = resolve(client_ca, settings.tls_client_ca)
    if bool(cert_file) != bool(key_file):
        raise fail("HTTPS needs both a certificate and its key (--tls-cert and --tls-key)", 2)
    for name in (cert_file, key_file, ca_file):
        if name and not Path(name).is_file():
            raise fail(f"TLS file {name} does not exist", 2)
    if ca_file and not cert_file:
        raise fail("client certificates (--tls-client-ca) need HTTPS (--tls-cert, --tls-key)", 2)
    return uvicorn_tls_options(cert_file, key_file, ca_file)


def serve(app: FastAPI, host: str, port: int, tls: dict[str, Any]) -> None:
    """Serve ``app`` until SIGINT/SIGTERM."""
    import uvicorn

    # uvicorn shuts down on SIGINT/SIGTERM, then re-raises the signal to the handler it found:
    # a quiet one here, so that the caller's cleanup runs afterwards.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For/-Proto from 127.0.0.1
    # (or FORWARDED_ALLOW_IPS) and rewrite the client address and scheme before the app sees
    # them. Only hub.api.trusted_proxies may do that (erpbridge.api.network), on every path.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        # uvicorn's lines go through the process's log setup (erpbridge.observe.logs)
        log_config=None,
        **tls,
    )


def api(
    config_path: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_client_ca: TlsClientCa = None,
    log_format: LogFormatOption = "console",
    log_level: LogLevelOption = "info",
    metrics_listen: MetricsListenOption = None,
) -> None:
    """Serve the API only (no scheduler, no worker): one of several API processes."""
    from erpbridge.api import create_app
    from erpbridge.ui.mount import mount_ui

    config = load(config_path)
    fill_credentials(config, required=False)
    engine = store(config)
    observability(config, engine, log_format, log_level, metrics_listen)
    hub = serving_hub(config, engine)
    tls = tls_options(config, tls_cert, tls_key, tls_client_ca)
    scheme = "https" if tls else "http"
    reloader = reloading(hub, "api", hub.reload)
    console.print(
        f"erpbridge API at {scheme}://{host}:{port}/api/v1 (docs: /docs), "
        f"configuration version {reloader.version_id}"
    )
    try:
        serve(mount_ui(create_app(hub, tls=bool(tls))), host, port, tls)
    finally:
        reloader.close()
    console.print("stopped")


def reloading(hub: Hub, role: str, apply: Callable[[LoadedConfig], None]) -> Reloader:
    """The process's :class:`~erpbridge.engine.reloader.Reloader` (SIGHUP, the hub's poll),
    started and handed to the API."""
    from erpbridge.engine.reloader import Reloader

    reloader = Reloader(hub.config, hub.engine, role, apply)
    hub.reloader = reloader
    reloader.start()
    return reloader
