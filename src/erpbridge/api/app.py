"""The FastAPI application served by ``erpbridge run`` (embedded) and ``erpbridge api``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException

from erpbridge.api import (
    backfill,
    configuration,
    cursors,
    events,
    health,
    oauth,
    operations,
    reconcile,
    rejections,
    resources,
    search,
    transitions,
)
from erpbridge.api.admission import EventAdmission
from erpbridge.api.context import ApiError, Hub
from erpbridge.api.headers import SecurityHeaders, hsts_value, security_headers
from erpbridge.api.network import ForwardedScheme
from erpbridge.api.nulchars import RefuseNul
from erpbridge.api.ratelimit import Limiter
from erpbridge.api.requestlog import RequestMetrics
from erpbridge.api.tokens import Keyring
from erpbridge.config.loader import LoadedConfig
from erpbridge.pci import redact_card_numbers
from erpbridge.saml import SamlTrust
from erpbridge.store.secretbox import SecretBox

__all__ = ["build_hub", "create_app"]

#: Codes of the router's own refusals (no route, wrong method, a body it cannot parse).
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}

_DESCRIPTION = """erpbridge's REST API: channels, flows, runs, records with lineage, the delivery
ledger, rejected records, inbound events and webhooks, search helps.

Authenticate with an API key (`X-API-Key`), a bearer JWT from `POST /oauth/token` (client
credentials, or a SAML 2.0 bearer assertion) or a configured identity provider, or a client
certificate (mutual TLS)."""


def build_hub(
    config: LoadedConfig,
    engine: Engine,
    *,
    wake: Callable[[], None] | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> Hub:
    """The :class:`Hub` an app serves: keys, limits and the secret box set up from ``config``."""
    settings = config.model.hub.api
    box = SecretBox.from_environment(config.base_dir)
    saml = SamlTrust(settings.saml, config.base_dir) if settings.saml else None
    return Hub(
        config=config,
        engine=engine,
        keyring=Keyring(engine, box, settings, config.base_dir),
        limiter=Limiter(settings.rate_limits),
        box=box,
        wake=wake,
        health=health,
        saml=saml,
    )


#: Files served under ``/ui/static``: the vendored Swagger UI and htmx, the back office's own
#: stylesheet and script (see ``ui/static/VENDORED.md``). Package data, found without importing
#: the back office's modules (they import the API's).
STATIC = Path(str(files("erpbridge"))) / "ui" / "static"


def _docs(app: FastAPI) -> None:
    """``/docs``: the Swagger UI, its script and stylesheet from the package (no CDN)."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="erpbridge API",
            swagger_js_url="/ui/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/ui/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/ui/static/swagger-ui/favicon-32x32.png",
        )


def create_app(hub: Hub, *, tls: bool = False) -> FastAPI:
    """The app: ``/api/v1``, ``/oauth``, ``/hooks``, ``/healthz``, ``/readyz``, ``/metrics``,
    ``/openapi.json``, ``/docs`` (the back office under ``/ui`` is added by
    ``erpbridge.ui.mount_ui``).

    ``tls`` says the server speaks HTTPS (then responses carry Strict-Transport-Security).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        hub.operations.close()  # the channels' connections, opened by operations on demand

    app = FastAPI(
        title="erpbridge",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package (no CDN): _docs
        redoc_url=None,  # ReDoc would load its script from a CDN
    )
    app.state.hub = hub
    settings = hub.config.model.hub.api
    hsts_max_age_s = settings.hsts_max_age_s if tls else None
    app.add_middleware(EventAdmission, limit=settings.max_pending_events)
    app.add_middleware(RefuseNul)  # inside SecurityHeaders: its 400s get the headers too
    app.add_middleware(SecurityHeaders, hsts_max_age_s=hsts_max_age_s)
    app.add_middleware(ForwardedScheme, trusted=settings.trusted_proxies)
    app.add_middleware(RequestMetrics)  # outermost of ours: counts every answer, 4xx included
    app.include_router(resources.router)
    app.include_router(backfill.router)
    app.include_router(reconcile.router)
    app.include_router(events.router)
    app.include_router(events.hooks)
    app.include_router(oauth.router)
    app.include_router(operations.router)
    app.include_router(search.router)
    app.include_router(cursors.router)
    app.include_router(rejections.router)
    app.include_router(transitions.router)
    app.include_router(configuration.router)
    _docs(app)
    app.include_router(health.router)
    app.include_router(health.probes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        # The path is the caller's: a card number in it is never echoed (nor is one in a detail).
        body = {"error": {"code": code, "message": redact_card_numbers(message)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's outermost middleware answers with this, outside SecurityHeaders: add them.
        # It raises the exception again afterwards, and the server logs it with its traceback.
        body = {"error": {"code": "internal", "message": "the hub failed; its log has details"}}
        headers = security_headers(request.url.path, hsts_value(hsts_max_age_s))
        return JSONResponse(body, status_code=500, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name each place and cause, but never echo the input (it may hold a secret or a PAN).
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()
        ]
        body = {"error": {"code": "invalid_request", "message": "the request is invalid"}}
        return JSONResponse({**body, "problems": problems}, status_code=422)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when the store (and, embedded, the scheduler and worker) are well; else 503."""
        if hub.health is not None:
            report = hub.health()
        else:
            try:
                with hub.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                report = {"status": "ok", "store": "ok"}
            except Exception as exc:  # noqa: BLE001 - any store failure means unhealthy
                report = {"status": "failing", "store": f"{type(exc).__name__}"}
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app
