"""``GET /api/v1/search/{entity}`` through the real FastAPI app: customers pushed as events are
found by prefix, substring and accents; unknown entities, bad parameters and callers without the
``read`` scope are refused with a clear answer; hostile queries are plain text."""

from __future__ import annotations

import pytest

from api.conftest import ApiClient, Project
from erpbridge.api import create_app

CUSTOMERS = [
    {"id": "C-1001", "name": "Müller GmbH", "email": "info@mueller.de"},
    {"id": "C-1002", "name": "Hans Müller"},
    {"id": "C-1003", "name": "Mueller AG"},
    {"id": "C-2001", "name": "Zimmermann & Söhne KG"},
]


def searching(project: Project, key: str | None = "reader") -> ApiClient:
    """A client of an app that serves the search route, with the API key ``key`` (or none)."""
    app = create_app(project.hub)
    headers = {"X-API-Key": project.keys[key]} if key else {}
    return ApiClient(app, "127.0.0.1", headers)


@pytest.fixture
def stocked(project: Project) -> Project:
    with project.client(**{"X-API-Key": project.keys["shop"]}) as http:
        answer = http.post("/api/v1/events/customers-in", json=CUSTOMERS)
    assert answer.status_code == 202, answer.text
    return project


def test_search_finds_what_events_stored(stocked: Project) -> None:
    with searching(stocked) as http:
        answer = http.get("/api/v1/search/customer", params={"q": "muller"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["entity"], body["query"]) == ("customer", "muller")
    assert body["took_ms"] >= 0
    assert body["hits"] == [
        {
            "entity": "customer",
            "key": "C-1001",
            "version": 1,
            "label": "Müller GmbH",
            "match": "prefix",
            "matched": ["name"],
        },
        {
            "entity": "customer",
            "key": "C-1002",
            "version": 1,
            "label": "Hans Müller",
            "match": "word",
            "matched": ["name"],
        },
    ]


def test_substring_several_words_and_limit(stocked: Project) -> None:
    with searching(stocked) as http:
        middle = http.get("/api/v1/search/customer", params={"q": "mmerma"}).json()
        both = http.get("/api/v1/search/customer", params={"q": "söhne zimmer"}).json()
        one = http.get("/api/v1/search/customer", params={"q": "müller", "limit": 1}).json()
        key = http.get("/api/v1/search/customer", params={"q": "c-2001"}).json()
    assert [(h["key"], h["match"]) for h in middle["hits"]] == [("C-2001", "substring")]
    assert [h["key"] for h in both["hits"]] == ["C-2001"]
    assert len(one["hits"]) == 1
    assert [(h["key"], h["match"]) for h in key["hits"]] == [("C-2001", "key")]


@pytest.mark.parametrize("entity", ["vehicle", "order"])
def test_unknown_or_unsearchable_entity_is_404(stocked: Project, entity: str) -> None:
    with searching(stocked) as http:
        answer = http.get(f"/api/v1/search/{entity}", params={"q": "müller"})
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "not_searchable"
    assert f"entity {entity!r} has no search help" in error["message"]
    assert "searchable: customer, product" in error["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query.q"),
        ({"q": ""}, "query.q"),
        ({"q": "   "}, "query.q"),
        ({"q": "x" * 201}, "query.q"),
        ({"q": "abc", "limit": 0}, "query.limit"),
        ({"q": "abc", "limit": 101}, "query.limit"),
        ({"q": "abc", "limit": "many"}, "query.limit"),
    ],
)
def test_bad_parameters_are_422(stocked: Project, params: dict[str, object], field: str) -> None:
    with searching(stocked) as http:
        answer = http.get("/api/v1/search/customer", params=params)
    assert answer.status_code == 422, answer.text
    assert [p["field"] for p in answer.json()["problems"]] == [field]


def test_a_malformed_entity_name_is_422(stocked: Project) -> None:
    with searching(stocked) as http:
        answer = http.get("/api/v1/search/no such entity", params={"q": "abc"})
    assert answer.status_code == 422
    assert [p["field"] for p in answer.json()["problems"]] == ["path.entity"]


@pytest.mark.parametrize(
    "query",
    ['"', "'", "%", "_", "\\", "*", "NEAR(", "a OR b", 'x" OR "y', "'; DROP TABLE records; --",
     "%%%", "ü", "🙂"],
)  # fmt: skip
def test_hostile_queries_answer_200(stocked: Project, query: str) -> None:
    with searching(stocked) as http:
        answer = http.get("/api/v1/search/customer", params={"q": query})
        after = http.get("/api/v1/search/customer", params={"q": "müller"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["hits"] == [] or query == "ü"
    assert len(after.json()["hits"]) == 3


def test_callers_need_the_read_scope(stocked: Project) -> None:
    with searching(stocked, key=None) as http:
        anonymous = http.get("/api/v1/search/customer", params={"q": "müller"})
    with searching(stocked, key="shop-only") as http:
        events_only = http.get("/api/v1/search/customer", params={"q": "müller"})
    assert anonymous.status_code == 401
    assert events_only.status_code == 403
    assert events_only.json()["error"]["code"] == "missing_scope"


def test_the_route_is_documented(project: Project) -> None:
    app = searching(project).app
    operation = app.openapi()["paths"]["/api/v1/search/{entity}"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"entity", "q", "limit"}
    assert {"200", "404", "422"} <= set(operation["responses"])
