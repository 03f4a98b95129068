"""The back office: server-rendered pages under ``/ui`` (Jinja2, htmx), served by ``erpbridge run``
and ``erpbridge api`` (``erpbridge.ui.mount.mount_ui``). Its static files (htmx, the vendored
Swagger UI of ``/docs``, the stylesheet) are package data in ``static/``."""
