"""Transitions in the back office, against ``erpbridge run`` served as a subprocess: a record's
page shows its state, a button per allowed transition for operators (none for viewers) and its
transition log; a refusal comes back as a red notice naming the cause, nothing changed."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import ServedHub
from ui.backoffice import served_backoffice, signed_in
from workflows.claims import config

PAGE = "/ui/records/warranty_claim/W-9"


def _fire(http: httpx.Client, csrf: str, name: str, **form: str) -> str:
    """POST the button's form; the notice the record's page then shows."""
    answer = http.post(
        f"/ui/transitions/warranty_claim/{name}", data={"csrf": csrf, "key": "W-9", **form}
    )
    assert answer.status_code == 303, answer.text
    page = http.get(answer.headers["location"])
    found = re.search(r'<div class="notice[^"]*" role="status">(.*?)</div>', page.text, re.S)
    assert found, page.text
    return html.unescape(found.group(1))


def _state(http: httpx.Client) -> str:
    found = re.search(r'id="state-claim">([^<]*)<', http.get(PAGE).text)
    assert found
    return found.group(1)


def _claim(hub: ServedHub) -> None:
    engine = open_store(f"sqlite:///{hub.database}")
    key = create_client(engine, "vms", {"events"})[1]
    engine.dispose()
    body = {"number": "W-9", "amount": "120.00"}
    with hub.client(headers={"X-API-Key": key}) as client:
        assert client.post("/api/v1/events/claims-vms", json=body).status_code == 202


def test_operators_fire_transitions_from_the_record_page(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    with served_backoffice(root, config(), folders=("inbox", "erp-inbox")) as hub:
        _claim(hub)
        with signed_in(hub, "viewer") as (http, csrf):
            page = http.get(PAGE).text
            assert 'id="state-claim">submitted<' in page and "fire-review" not in page
            refused = http.post(
                "/ui/transitions/warranty_claim/review", data={"csrf": csrf, "key": "W-9"}
            )
            assert refused.status_code == 403
        with signed_in(hub, "operator") as (http, csrf):
            page = http.get(PAGE).text
            assert 'id="fire-review"' in page and 'id="fire-reject"' in page
            assert _fire(http, csrf, "review") == (
                "review: submitted → in_review (version 2), 1 delivery(ies) queued"
            )
            assert _fire(http, csrf, "reject") == "reject refused: 'reject' needs a reason"
            assert _fire(http, csrf, "approve") == (
                "approve refused: 'approve' needs approved_amount: empty"
            )
            assert _state(http) == "in_review"
            assert _fire(http, csrf, "approve", **{"field:approved_amount": "80"}).startswith(
                "approve: in_review → approved (version 3), 4 delivery(ies)"
            )
            assert _fire(http, csrf, "credit") == (
                "credit refused: user 'operator' may not fire 'credit' "
                "(allowed: scopes admin; flows claims-erp)"
            )
            no_csrf = http.post("/ui/transitions/warranty_claim/close", data={"key": "W-9"})
            assert no_csrf.status_code == 403
            page = http.get(PAGE).text
            assert _state(http) == "approved"
            log = page[page.index('id="transitions"') : page.index("<h2>Versions</h2>")]
            assert "user operator" in log and "flow claims-vms" in log
            assert log.count("<tr><td>") == 3  # submitted, in_review, approved
            missing = http.post(
                "/ui/transitions/warranty_claim/review", data={"csrf": csrf, "key": "W-404"}
            )
            assert missing.status_code == 404
        assert "Traceback" not in hub.output()
