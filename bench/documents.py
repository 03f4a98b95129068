"""Benchmark: documents issued by the hub against the same template rendered with the libraries.

Two formats, each with the warranty example's template (examples/warranty/templates):

- ``pdf``: ``credit_note.html.j2`` → WeasyPrint;
- ``edifact``: ``credit_note.edi.j2`` → an INVOIC D.96A interchange.

For each, two phases run in their own subprocess (so that each has its own peak RSS):

- ``direct``: Jinja2 (a plain ``Environment``) renders the template for N claims, and WeasyPrint
  writes the PDF, or the EDIFACT body is wrapped in UNB/UNH … UNT/UNZ by string concatenation
  and parsed back with pydifact — what a script without the hub would do;
- ``hub``: N claims come IN through a folder flow into a SQLite hub, then the worker issues and
  delivers the documents to an archive channel: a gapless number per document, the sandboxed
  template with its limits, the EDIFACT subset check and read-back, the document stored with
  its SHA-256 in the hub, the archive file and its metadata written and synced.

Reported per format: documents per second and peak RSS of both phases, and the hub's overhead
as the ratio of the two rates. The issue asks for 10 000 of each (the default, ~15 minutes on a
shared 2-core machine); ``--count 500`` for a quick look. The last line on stdout is one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "examples" / "warranty" / "templates"
sys.path.insert(0, str(REPO / "tests"))

DOCUMENTS = {
    "pdf": """
  doc:
    entity: warranty_claim
    format: pdf
    template: templates/credit_note.html.j2
    numbering: {sequence: bench, format: "CNP-{year}-{seq:06d}"}
""",
    "edifact": """
  doc:
    entity: warranty_claim
    format: edifact
    template: templates/credit_note.edi.j2
    numbering: {sequence: bench, format: "C{year}{seq:05d}"}
    edifact: {message: INVOIC, sender: "4000000000001:14", recipient: "4711"}
""",
}
FLOW = """
  - name: archive-out
    channel: archive
    entity: warranty_claim
    direction: out
    document: doc
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def claims(count: int) -> list[dict[str, Any]]:
    from documents.claims import claim

    return [claim(f"WC-{i:06d}") for i in range(count)]


def direct(fmt: str, count: int) -> dict[str, float]:
    """The template rendered by Jinja2 and the libraries alone."""
    from datetime import UTC, datetime

    import jinja2
    from pydifact.segmentcollection import Interchange

    def release(value: Any) -> Any:  # EDIFACT's release character before its separators
        text = str(value)
        for char in "?+:'":
            text = text.replace(char, "?" + char)
        return text

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=fmt == "pdf",
        finalize=release if fmt == "edifact" else None,
    )
    env.filters["money"] = lambda v, places=2: f"{float(v):.{places}f}"
    env.filters["ymd"] = lambda v: str(v)[:10].replace("-", "")
    name = "credit_note.html.j2" if fmt == "pdf" else "credit_note.edi.j2"
    template = env.get_template(name)
    records = claims(count)
    if fmt == "pdf":
        import weasyprint
    started = time.perf_counter()
    size = 0
    for i, record in enumerate(records):
        issued = datetime.now(UTC)
        number = f"N{i:06d}"
        document = {"number": number, "issued_at": issued, "issued_on": f"{issued:%Y-%m-%d}"}
        context = {"record": record, "document": document}
        text = template.render(context)
        if fmt == "pdf":
            out = weasyprint.HTML(string=text, base_url=str(TEMPLATES) + "/").write_pdf()
        else:
            body = text.strip()
            segments = body.count("'") + 2
            edi = (
                f"UNA:+.? 'UNB+UNOC:3+4000000000001:14+4711+{issued:%y%m%d:%H%M}+{number}'"
                f"UNH+{number}+INVOIC:D:96A:UN'{body}UNT+{segments}+{number}'UNZ+1+{number}'"
            )
            Interchange.from_str(edi)
            out = edi.encode("utf-8")
        size += len(out)
    seconds = time.perf_counter() - started
    return {"count": count, "seconds": seconds, "per_s": count / seconds,
            "mean_bytes": size / count, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def hub(fmt: str, count: int) -> dict[str, float]:
    """The same documents issued and archived by the hub (SQLite, one worker)."""
    from documents.claims import deliver, feed, hub_folder, write_config
    from erpbridge import open_store

    with tempfile.TemporaryDirectory(prefix="bench-documents-") as tmp:
        root = hub_folder(Path(tmp))
        url = f"sqlite:///{root / 'hub.db'}"
        config = write_config(root, url, DOCUMENTS[fmt], FLOW)
        engine = open_store(url)
        for start in range(0, count, 1000):
            feed(config, engine, *claims(count)[start : start + 1000], name=f"c{start}")
        started = time.perf_counter()
        delivered = dead = 0
        while delivered + dead < count:
            stats = deliver(config, engine)
            if not stats.delivered and not stats.dead:
                break
            delivered += stats.delivered
            dead += stats.dead
        seconds = time.perf_counter() - started
        files = list((root / "archive").rglob("*.pdf" if fmt == "pdf" else "*.edi"))
        engine.dispose()
    assert delivered == count and dead == 0 and len(files) == count, (delivered, dead, len(files))
    return {"count": count, "seconds": seconds, "per_s": count / seconds,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="documents per format")
    parser.add_argument("--formats", default="edifact,pdf")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # format:phase, in a subprocess
    args = parser.parse_args()
    if args.phase:
        fmt, phase = args.phase.split(":")
        print(json.dumps((direct if phase == "direct" else hub)(fmt, args.count)))
        return
    figures: dict[str, Any] = {"count": args.count}
    for fmt in args.formats.split(","):
        for phase in ("direct", "hub"):
            out = subprocess.run(
                [sys.executable, __file__, "--count", str(args.count), "--phase", f"{fmt}:{phase}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            figures[f"{fmt}_{phase}"] = result
            print(
                f"{fmt:8} {phase:6} {result['per_s']:8.1f} documents/s  "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB  ({result['seconds']:.1f} s)",
                file=sys.stderr,
            )
        ratio = figures[f"{fmt}_direct"]["per_s"] / figures[f"{fmt}_hub"]["per_s"]
        figures[f"{fmt}_overhead_ratio"] = round(ratio, 2)
        print(f"{fmt:8} the hub takes {ratio:.2f}× the libraries' time", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
