"""The FastAPI application served by ``erpbridge run``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from erpbridge.engine.service import Service

__all__ = ["create_app"]


def create_app(service: Service) -> FastAPI:
    """The app: ``GET /healthz`` answers 200 when the store and the loops are well, else 503."""
    app = FastAPI(title="erpbridge", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        report = service.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    return app
