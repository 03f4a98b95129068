"""NUL characters through the served hub (``erpbridge api``), on SQLite and PostgreSQL.

PostgreSQL text cannot hold NUL: a key ``C\\u0000`` in an event, ``%00`` in a path parameter or a
query value, or a NUL in a token request failed in the store with a 500 or a reset connection
and a traceback in the log. Each is now a 400 (401 at the token endpoint) in the error shape with
the security headers, and the hub goes on answering.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import serve_hub

CONFIG = """
hub:
  database_url: "{url}"
  api:
    rate_limits: {{per_client: "10000/second", per_route: {{}}, anonymous: "10000/second"}}
channels:
  shop: {{system: platform}}
flows:
  - {{name: shop-in, channel: shop, entity: customer, direction: in, trigger: immediate}}
"""


def _refused(answer: httpx.Response, status: int = 400) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    if status == 400:
        error = answer.json()["error"]
        assert error["code"] == "nul_character" and "NUL" in error["message"], answer.text


def test_nul_characters_are_refused_not_500(hub_url: str, tmp_path: Path) -> None:
    root = tmp_path / "hub"
    root.mkdir()
    engine = open_store(hub_url)
    key = create_client(engine, "admin", {"admin"})[1]
    engine.dispose()
    with serve_hub(root, CONFIG.format(url=hub_url), ready_timeout_s=120) as hub:
        with hub.client(headers={"X-API-Key": key}, timeout=30) as http:
            for body in (
                b'{"code": "C\\u0000", "name": "n"}',
                b'{"code": "C-1", "name": "n", "addresses": [{"\\u0000": "x"}]}',
            ):
                headers = {"Content-Type": "application/json"}
                _refused(http.post("/api/v1/events/shop-in", content=body, headers=headers))
            _refused(http.get("/api/v1/records/customer/C%00"))
            _refused(http.get("/api/v1/runs", params={"flow": "a\x00b"}))
            _refused(http.get("/api/v1/search/customer", params={"q": "a\x00b"}))
            form = {"grant_type": "client_credentials", "client_id": "ad\x00min"}
            _refused(http.post("/oauth/token", data={**form, "client_secret": key}), 401)
            good = http.post("/api/v1/events/shop-in", json={"code": "C-1", "name": "n"})
            assert good.status_code == 202, good.text
        assert "Traceback" not in hub.output(), hub.output()
