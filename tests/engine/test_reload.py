"""Configuration reload without a restart (issue 14), on served processes: SIGHUP to
``erpbridge run`` and ``erpbridge api``, ``erpbridge reload``, ``POST /api/v1/config/reload``;
an invalid file refused with its problems while the running configuration stays; versions kept
in the hub with who and when, a diff between them, rollback to an earlier one (its comments
back in the file); the version each process runs.

Before: ``erpbridge run`` kept the configuration it started with; after fixing the YAML a
retried delivery failed again with the old error until a restart, and nothing said so.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub, serve_hub, wait_for
from hubprocess import run_cli as cli

CONFIG = """# the hub of the reload test
channels:
  shop: {system: platform}
  erp: {system: folder, options: {path: erp}}   # the ERP's import folder
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping: {code: {from: id, required: true}, name: name}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {format: json, name: "{key}.json"}
"""


def version_of(config: str, tag: str) -> str:
    return config.replace('name: "{key}.json"', f'name: "{{key}}-{tag}.json"')


BROKEN = CONFIG.replace(
    "entity: customer\n    direction: out", "entity: custmer\n    direction: out"
)


def running_version(http: httpx.Client) -> int:
    answer = http.get("/api/v1/config")
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


def deliver(hub: ServedHub, http: httpx.Client, key: str, file: str) -> None:
    sent = http.post("/api/v1/events/customers-in", json={"id": key, "name": key.lower()})
    assert sent.status_code in (200, 201, 202), sent.text
    wait_for(lambda: (hub.root / "erp" / file).exists(), f"erp/{file}")


def client_key(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "erp").mkdir(exist_ok=True)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    _, key = create_client(engine, "ops", {"admin", "events"})
    engine.dispose()
    (root / "erpbridge.db").chmod(0o600)
    return key


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedHub, httpx.Client]]:
    root = tmp_path / "hub"
    key = client_key(root)
    with (
        serve_hub(root, CONFIG, command="run", args=("--interval", "0.2")) as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        yield hub, http


def test_reload_of_a_served_run(served: tuple[ServedHub, httpx.Client]) -> None:
    hub, http = served
    config = http.get("/api/v1/config").json()
    assert config["version"] == 1
    (process,) = config["processes"]
    assert (process["role"], process["version"], process["pid"]) == ("run", 1, hub.process.pid)
    deliver(hub, http, "C-1", "C-1.json")

    # a broken file: refused on SIGHUP, over the API and by erpbridge reload; the old one runs
    hub.config.write_text(BROKEN, encoding="utf-8")
    hub.process.send_signal(signal.SIGHUP)
    refused = http.post("/api/v1/config/reload")
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert "running one stays" in message and "custmer" in message and "erpbridge.yaml:" in message
    done = cli(hub.root, "reload", "--wait", "0")
    assert done.returncode == 2 and "custmer" in done.stdout + done.stderr
    assert "the running configuration stays" in done.stderr
    assert hub.process.poll() is None and running_version(http) == 1
    deliver(hub, http, "C-2", "C-2.json")

    # SIGHUP with a good file: the worker writes with the new target from then on
    hub.config.write_text(version_of(CONFIG, "v2"), encoding="utf-8")
    hub.process.send_signal(signal.SIGHUP)
    wait_for(lambda: running_version(http) == 2, "version 2")
    deliver(hub, http, "C-3", "C-3-v2.json")

    # erpbridge reload: the served process picks it up through the hub
    hub.config.write_text(version_of(CONFIG, "v3"), encoding="utf-8")
    done = cli(hub.root, "reload", "--wait", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "new version 3" in done.stdout
    assert f"{hub.process.pid}" in done.stdout and "not yet" not in done.stdout
    assert running_version(http) == 3
    deliver(hub, http, "C-4", "C-4-v3.json")

    # versions with who/how, a diff, and a rollback that puts the first text (comments) back
    versions = http.get("/api/v1/config/versions").json()
    assert [(v["id"], v["action"]) for v in versions] == [
        (3, "reload"),
        (2, "reload"),
        (1, "start"),
    ]
    assert versions[1]["actor"] == "SIGHUP" and versions[0]["actor"].startswith("cli:")
    diff = http.get("/api/v1/config/diff", params={"from": 1, "to": 2}).json()["diff"]
    assert '-    target: {format: json, name: "{key}.json"}' in diff
    assert '+    target: {format: json, name: "{key}-v2.json"}' in diff
    assert http.get("/api/v1/config/versions/9").status_code == 404
    rolled = http.post("/api/v1/config/rollback/1")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json() == {"version": 4, "changed": True}
    assert hub.config.read_text(encoding="utf-8") == CONFIG  # the comments too
    deliver(hub, http, "C-5", "C-5.json")
    shown = cli(hub.root, "config", "diff", "3")
    assert '+    target: {format: json, name: "{key}.json"}' in shown.stdout
    listed = cli(hub.root, "config", "versions")
    assert "rollback to version 1" in listed.stdout

    actions = [
        (a["action"], a["outcome"])
        for a in http.get("/api/v1/audit").json()
        if "config" in a["action"]
    ]
    assert actions == [
        ("config.rollback", "ok"),
        ("config.reload", "ok"),
        ("config.reload", "refused"),
    ]
    assert hub.process.poll() is None


def test_sighup_reloads_a_served_api(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    key = client_key(root)
    with (
        serve_hub(root, CONFIG, command="api") as hub,
        hub.client(headers={"X-API-Key": key}) as http,
    ):
        assert "orders-out" not in {f["name"] for f in http.get("/api/v1/flows").json()}
        more = CONFIG + (
            "  - name: orders-out\n    channel: erp\n    entity: order\n"
            "    direction: out\n    target: {format: json}\n"
        )
        hub.config.write_text(more, encoding="utf-8")
        hub.process.send_signal(signal.SIGHUP)
        wait_for(lambda: running_version(http) == 2, "version 2")
        assert "orders-out" in {f["name"] for f in http.get("/api/v1/flows").json()}
        (process,) = http.get("/api/v1/config").json()["processes"]
        assert (process["role"], process["version"]) == ("api", 2)

        # an edit from the back office: checked and diffed first, saved with its comments
        edited = more.replace("# the hub of the reload test", "# edited in the browser")
        checked = http.post("/api/v1/config/check", json={"text": BROKEN}).json()
        assert any("custmer" in p for p in checked["problems"])
        checked = http.post("/api/v1/config/check", json={"text": edited}).json()
        assert checked["problems"] == [] and "+# edited in the browser" in checked["diff"]
        bad = http.put("/api/v1/config", json={"text": BROKEN, "base_version": 2})
        assert bad.status_code == 422 and hub.config.read_text(encoding="utf-8") == more
        stale = http.put("/api/v1/config", json={"text": edited, "base_version": 1})
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
        saved = http.put("/api/v1/config", json={"text": edited, "base_version": 2})
        assert saved.status_code == 200, saved.text
        assert saved.json() == {"version": 3, "changed": True}
        assert hub.config.read_text(encoding="utf-8") == edited
        newest = http.get("/api/v1/config/versions").json()[0]
        assert (newest["id"], newest["action"], newest["actor"]) == (3, "save", "ops")
        assert hub.process.poll() is None
