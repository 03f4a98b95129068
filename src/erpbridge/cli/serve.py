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
    from fastapi import FastAPI

    from erpbridge.config.loader import LoadedConfig

__all__ = ["TlsCert", "TlsClientCa", "TlsKey", "api", "serve", "tls_options"]

TlsCert = Annotated[
    Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM); else hub.api.")
]
TlsKey = Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")]
TlsClientCa = Annotated[
    Path | None, typer.Option(help="Ask for client certificates signed by this CA (mutual TLS).")
]


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
        **tls,
    )


def api(
    config_path: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_client_ca: TlsClientCa = None,
) -> None:
    """Serve the API only (no scheduler, no worker): one of several API processes."""
    from erpbridge.api import create_app
    from erpbridge.ui.mount import mount_ui

    config = load(config_path)
    fill_credentials(config, required=False)
    hub = serving_hub(config, store(config))
    tls = tls_options(config, tls_cert, tls_key, tls_client_ca)
    scheme = "https" if tls else "http"
    console.print(f"erpbridge API at {scheme}://{host}:{port}/api/v1 (docs: /docs)")
    serve(mount_ui(create_app(hub, tls=bool(tls))), host, port, tls)
    console.print("stopped")
