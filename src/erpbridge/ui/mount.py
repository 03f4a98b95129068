"""Mounting the back office and the vendored Swagger UI on the hub's FastAPI app."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from erpbridge.ui.auth import LoginRequired, Refused
from erpbridge.ui.pages import ROUTERS
from erpbridge.ui.render import render

__all__ = ["STATIC", "mount_ui"]

#: The vendored files (htmx, Swagger UI, our stylesheet); see ``static/VENDORED.md``.
STATIC = Path(str(files("erpbridge.ui") / "static"))


def mount_ui(app: FastAPI) -> None:
    """Add ``/ui`` (pages, ``/ui/static``) and ``/docs`` (Swagger UI from the package) to ``app``
    (made with ``docs_url=None``)."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="erpbridge API",
            swagger_js_url="/ui/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/ui/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/ui/static/swagger-ui/favicon-32x32.png",
        )

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path
        if request.headers.get("hx-request"):
            # htmx follows a redirect inside the fragment; make it load the login page whole
            return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
        if request.method != "GET" or not target.startswith("/ui"):
            target = "/ui/"
        return RedirectResponse(f"/ui/login?next={target}", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        title = "Not allowed" if exc.status == 403 else "Not done"
        context = {"title": title, "message": exc.message, "status": exc.status}
        return render(request, "error.html", context, exc.status)
