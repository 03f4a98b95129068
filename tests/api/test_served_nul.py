"""NUL characters through the served hub (``erpbridge api``), on SQLite and PostgreSQL.

PostgreSQL text cannot hold NUL: a key ``C\\u0000`` in an event, ``%00`` in a path parameter or a
query value, or a NUL in a token request failed in the store with a 500 or a reset connection
and a traceback in the log. Each is now a 400 (401 at the token endpoint) in the error shape with
the security headers, and the hub goes on answering.
"""

from __future__ import annotations

import time
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


FOLDER = """
hub:
  database_url: "{url}"
  api:
    rate_limits: {{per_client: "10000/second", per_route: {{}}, anonymous: "10000/second"}}
channels:
  drop: {{system: folder, options: {{path: inbox}}}}
flows:
  - {{name: csv-in, channel: drop, entity: customer, direction: in, source: {{pattern: "*.csv"}}}}
"""


def test_a_nul_in_a_file_key_rejects_that_row_only(hub_url: str, tmp_path: Path) -> None:
    """A CSV row keyed ``C<NUL>X`` failed the whole run on PostgreSQL (raw SQL in the run's
    error), the file stayed in the inbox and blocked the files after it."""
    root = tmp_path / "hub"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "a.csv").write_bytes(b"code,name\nC\x00X,nul key\nC-2,ok\n")
    (root / "inbox" / "b.csv").write_bytes(b"code,name\nC-3,after\n")
    engine = open_store(hub_url)
    key = create_client(engine, "admin", {"admin"})[1]
    engine.dispose()
    with serve_hub(root, FOLDER.format(url=hub_url), command="run", ready_timeout_s=120) as hub:
        with hub.client(headers={"X-API-Key": key}, timeout=30) as http:
            assert http.post("/api/v1/flows/csv-in/run").status_code == 202
            deadline = time.monotonic() + 40
            while not (runs := http.get("/api/v1/runs", params={"flow": "csv-in"}).json()):
                assert time.monotonic() < deadline, "the run did not finish"
                time.sleep(0.2)
            while runs[0]["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
                runs = http.get("/api/v1/runs", params={"flow": "csv-in"}).json()
            assert runs[0]["status"] == "succeeded", runs
            assert (runs[0]["created"], runs[0]["rejected"]) == (2, 1), runs
            for code in ("C-2", "C-3"):
                assert http.get(f"/api/v1/records/customer/{code}").status_code == 200
            rejected = http.get("/api/v1/rejected", params={"flow": "csv-in"}).json()
            assert [r["reason"] for r in rejected] == [
                "holds a NUL character, which the hub cannot store in a key"
            ], rejected
        assert "Traceback" not in hub.output(), hub.output()
    assert not list((root / "inbox").glob("*.csv"))
