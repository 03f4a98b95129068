"""Values that become one segment of a URL path: a caller's operation parameter, an item's id.

Quoting alone is not enough: ``..`` and ``.`` survive quoting and the HTTP client (like any
browser) resolves them, so ``customers/{code}`` with ``code=..`` would reach ``/`` of the API with
the channel's credentials. A value that could change the path is refused before any request
leaves the hub: a dot segment (also percent-encoded, in any case, however often), ``/``, ``\\``,
``?``, ``#``, control characters, or nothing at all.

Item ids an ERP gave out are laxer (``lax=True``): ``A/B`` is a real document number and goes as
the one segment ``A%2FB``; only dot segments and the empty id are refused there.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from erpbridge.errors import DataError

__all__ = ["path_segment"]

_CHANGES_PATH = frozenset("/\\?#")
_DECODE_ROUNDS = 4  # %252e%252e decodes to %2e%2e, then to ..: undo nesting that deep


def path_segment(name: str, value: object, *, lax: bool = False) -> str:
    """``value`` URL-quoted as one path segment; :class:`DataError` naming ``name`` when the value
    would change the path of the request (``lax``: only a dot segment or nothing)."""
    text = str(value)
    if not text:
        raise DataError(name, "is empty; it would change the request's path")
    forms = [text]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    for form in forms:
        if form.strip() in (".", ".."):
            raise DataError(
                name, "is a dot segment ('.' or '..'); it would change the request's path"
            )
        if not lax and any(c in _CHANGES_PATH or ord(c) < 32 or ord(c) == 127 for c in form):
            raise DataError(
                name,
                "holds '/', '\\', '?', '#' or a control character (also percent-encoded); "
                "it would change the request's path",
            )
    return quote(text, safe="")
