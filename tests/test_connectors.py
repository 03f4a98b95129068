"""The public connector API: its surface, the one safety-window spelling, and the guide that
shows a whole connector (``docs/connectors.md``) quoting the example package verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

import erpbridge.connectors
import erpbridge.testing
from erpbridge.connectors import Incremental, StreamOptions

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "connector-jsonl"


def test_connectors_exports_exactly_the_contract() -> None:
    assert set(erpbridge.connectors.__all__) == {
        "Deleter",
        "DEFAULT_TIME_WINDOW",
        "Batch",
        "Connection",
        "ConnectorClass",
        "CursorValue",
        "Health",
        "HealthCategory",
        "Incremental",
        "OperationOptions",
        "Operator",
        "OperatorClass",
        "OutgoingRecord",
        "Page",
        "PageReader",
        "Paginator",
        "Sink",
        "SinkClass",
        "Source",
        "SourceProblem",
        "SourceRecord",
        "StreamOptions",
        "TargetOptions",
        "operator_class",
        "sink_class",
    }
    for name in erpbridge.connectors.__all__:
        assert hasattr(erpbridge.connectors, name)


def test_testing_exports_the_suites() -> None:
    assert set(erpbridge.testing.__all__) == {
        "SinkHarness",
        "SinkSuite",
        "SourceHarness",
        "SourceSuite",
        "read_all",
    }


class _Stream(StreamOptions, Incremental):
    cursor_field: str = "seq"


@pytest.mark.parametrize("old", ["safety_window_s", "overlap_s"])
def test_old_window_spellings_still_read(old: str) -> None:
    assert _Stream.model_validate({old: 60}).safety_window == 60
    assert _Stream.model_validate({"safety_window": 30}).window() == 30
    assert _Stream().window(default=300) == 300


def test_the_window_given_twice_is_an_error() -> None:
    with pytest.raises(ValidationError, match="give the safety window once"):
        _Stream.model_validate({"safety_window": 1, "overlap_s": 2})


def test_the_window_is_not_negative() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _Stream.model_validate({"safety_window": -1})


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE, flags=re.DOTALL)


@pytest.mark.parametrize("path", ["src/erpbridge_jsonl/__init__.py", "tests/test_conformance.py"])
def test_the_guide_quotes_the_example_verbatim(path: str) -> None:
    assert (EXAMPLE / path).read_text(encoding="utf-8") in python_blocks()


def test_the_example_connector_is_about_sixty_lines() -> None:
    code = (EXAMPLE / "src" / "erpbridge_jsonl" / "__init__.py").read_text(encoding="utf-8")
    body = re.sub(r"^from .*? import \(.*?\)$", "", code, flags=re.DOTALL | re.MULTILINE)
    lines = [line for line in body.splitlines() if line.strip()]
    assert len(lines) <= 70, len(lines)
