"""Mounting the back office's pages on the hub's FastAPI app (its static files and ``/docs``
come with the app itself: ``erpbridge.api.app``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from erpbridge.ui.auth import LoginRequired, Refused
from erpbridge.ui.pages import ROUTERS
from erpbridge.ui.render import render

__all__ = ["mount_ui"]


def mount_ui(app: FastAPI) -> FastAPI:
    """Add the pages under ``/ui`` to ``app`` (made by ``erpbridge.api.create_app``)."""
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path
        if request.headers.get("hx-request"):
            # htmx would swap the login page into a fragment: make it load the whole page
            return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
        if request.method != "GET" or not target.startswith("/ui"):
            target = "/ui/"
        return RedirectResponse(f"/ui/login?next={target}", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        title = "Not allowed" if exc.status == 403 else "Not done"
        context = {"title": title, "message": exc.message, "status": exc.status}
        return render(request, "error.html", context, exc.status)

    return app
