"""The back office: server-rendered pages under ``/ui`` (Jinja2, htmx), served by ``erpbridge run``
and ``erpbridge api``, and the Swagger UI of ``/docs``, every asset from the package."""

from erpbridge.ui.mount import mount_ui

__all__ = ["mount_ui"]
