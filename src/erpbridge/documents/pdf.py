"""PDF documents: the template writes HTML + CSS, WeasyPrint lays it out (Debian's Pango).

WeasyPrint may only load what sits beside the configuration (stylesheets, logos): the URL
fetcher refuses the network and any file outside that folder, so a template cannot be used to
read the hub's files or call out.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

__all__ = ["PdfProblem", "html_to_pdf"]


class PdfProblem(Exception):
    """WeasyPrint could not lay the HTML out, or the template asked for a forbidden resource."""


def _fetcher(base_dir: Path) -> Any:
    """A WeasyPrint URL fetcher for files below ``base_dir`` and ``data:`` URLs only (WeasyPrint
    logs a refused resource as a warning and leaves it out)."""
    from weasyprint.urls import URLFetcher

    root = base_dir.resolve()

    class LocalFetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("file:"):
                path = Path(url2pathname(urlsplit(url).path)).resolve()
                if not path.is_relative_to(root):
                    raise ValueError(f"resource {url!r} is outside {root}")
            return super().fetch(url, headers)

    return LocalFetcher(allowed_protocols={"file", "data"})


class _Errors(logging.Handler):
    """WeasyPrint's errors of this thread (a stylesheet or image it could not load): a PDF
    without its stylesheet must not go out looking as if nothing happened."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def html_to_pdf(html: str, base_dir: Path, template_dir: Path) -> bytes:
    """The PDF of ``html``; relative URLs in it resolve against ``template_dir``, and only
    files below ``base_dir`` (the configuration's folder) are loaded."""
    import weasyprint  # ~0.5 s to import: only when a PDF is made

    errors = _Errors()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(errors)
    try:
        document = weasyprint.HTML(
            string=html,
            base_url=str(template_dir.resolve()) + "/",
            url_fetcher=_fetcher(base_dir),
        )
        pdf = document.write_pdf()
    except (ValueError, OSError, RuntimeError) as exc:
        raise PdfProblem(f"WeasyPrint cannot lay the HTML out: {exc}") from None
    finally:
        logger.removeHandler(errors)
    if errors.messages:
        raise PdfProblem(f"WeasyPrint: {errors.messages[0]}")
    if not isinstance(pdf, bytes):
        raise PdfProblem("WeasyPrint wrote no PDF")
    return pdf
