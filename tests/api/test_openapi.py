"""The OpenAPI document, fuzzed with schemathesis (bounded examples per operation): no answer is
a 5xx, and every documented answer matches its schema. Runs against the real app served by
uvicorn on 127.0.0.1, authenticated as an admin (so the routes are reached, not only 401).

schemathesis's pytest plugin does not run on this pytest; the operations are driven with
hypothesis directly, which is what the plugin does underneath."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from api.conftest import Project
from erpbridge.api import create_app
from httpserve import serve_app

EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def served(project: Project) -> Iterator[str]:
    with serve_app(create_app(project.hub), lifespan="auto") as served:
        yield served.url


def test_every_operation_answers_within_its_schema(served: str, project: Project) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    headers = {"X-API-Key": project.keys["admin"]}
    tried, failures = [], []
    for found in schema.get_all_operations():
        operation = found.ok()
        tried.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=headers,
                checks=[checks.not_a_server_error, checks.response_schema_conformance],
            )

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.label}: {exc}")
    assert len(tried) >= 20, tried
    assert failures == []
