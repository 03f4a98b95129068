"""One path segment from a caller's value: quoted, or refused when it would change the path."""

from __future__ import annotations

import pytest

from erpbridge.errors import DataError
from erpbridge.transports.pathparams import path_segment


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("C-1", "C-1"), ("C 1", "C%201"), ("50%", "50%25"), ("a.b", "a.b"), ("...", "..."), (7, "7")],
)
def test_one_segment_is_quoted(value: object, quoted: str) -> None:
    assert path_segment("code", value) == quoted


@pytest.mark.parametrize(
    "value",
    [
        "..",
        ".",
        " .. ",
        "%2e%2e",
        "%2E.",
        "%25252e%25252e",
        "a/b",
        "a%2fb",
        "a\\b",
        "a%5Cb",
        "a?b",
        "a%3Fb",
        "a#b",
        "a%23b",
        "a\x00b",
        "a\rb",
        "a\x7fb",
        "",
    ],
)
def test_a_value_that_would_change_the_path_is_refused_naming_the_parameter(value: str) -> None:
    with pytest.raises(DataError, match=r"^code: .*would change the request's path") as caught:
        path_segment("code", value)
    assert caught.value.path == "code"


def test_lax_takes_separators_as_one_segment_but_never_a_dot_segment() -> None:
    assert path_segment("id", "A/B?#\\", lax=True) == "A%2FB%3F%23%5C"
    for value in ("..", "%2e%2e", ".", ""):
        with pytest.raises(DataError, match=r"^id: "):
            path_segment("id", value, lax=True)
