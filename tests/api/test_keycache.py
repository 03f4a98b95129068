"""The event routes remember API keys (``hub.api.key_cache_s``), yet a client revoked, expired
or narrowed in the store, by any process, is refused at its next event with nothing stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from api.conftest import Project
from erpbridge.store.apiclients import revoke_client
from erpbridge.store.runs import now
from erpbridge.store.tables import api_clients


def _send(project: Project, key: str) -> tuple[int, dict[str, object]]:
    with project.client(**{"X-API-Key": project.keys["shop"]}) as http:
        answer = http.post("/api/v1/events/customers-in", json={"id": key, "name": "Muster"})
    return answer.status_code, answer.json()


def test_a_revoked_client_is_refused_though_its_key_is_remembered(project: Project) -> None:
    assert _send(project, "C-1")[0] == 202
    assert project.hub.keys.get(project.keys["shop"]) is not None  # remembered
    assert revoke_client(project.engine, "shop")  # as `erpbridge clients revoke` would
    before = project.counts()
    status, body = _send(project, "C-2")
    assert status == 401 and "client 'shop' was revoked" in str(body), body
    assert project.counts() == before
    assert project.hub.keys.get(project.keys["shop"]) is None  # forgotten
    assert _send(project, "C-3")[0] == 401  # looked up afresh: still refused


def test_an_expired_or_narrowed_client_is_refused_at_its_next_event(project: Project) -> None:
    assert _send(project, "C-1")[0] == 202
    with project.engine.begin() as conn:
        conn.execute(
            update(api_clients).where(api_clients.c.name == "shop").values(scopes='["read"]')
        )
    before = project.counts()
    status, body = _send(project, "C-2")
    assert status == 401 and "changed since its key was checked" in str(body), body
    assert project.counts() == before
    status, body = _send(project, "C-3")  # checked afresh: it lacks the events scope now
    assert status == 403 and "lacks the scope 'events'" in str(body), body
    with project.engine.begin() as conn:
        conn.execute(
            update(api_clients)
            .where(api_clients.c.name == "shop")
            .values(scopes='["events"]', expires_at=now() + timedelta(seconds=60))
        )
    assert _send(project, "C-4")[0] == 202
    with project.engine.begin() as conn:
        conn.execute(
            update(api_clients)
            .where(api_clients.c.name == "shop")
            .values(expires_at=now() - timedelta(seconds=1))
        )
    before = project.counts()
    status, body = _send(project, "C-5")
    assert status == 401 and "expired" in str(body), body
    assert project.counts() == before
