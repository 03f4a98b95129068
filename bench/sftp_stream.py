"""Benchmark: stream one large CSV file from an SFTP inbox through the sftp transport.

1. Uses the sshd of ``ERPBRIDGE_TEST_SFTP`` (``scripts/sshd.sh``); starts one (and stops it
   afterwards) when the variable is not set, which needs root.
2. Generates a CSV of ``--gb`` GiB (default 2) straight into a fresh folder on the server's file
   system, in chunks, so the generator itself stays small.
3. Reads it in a subprocess through ``SftpTransport.read`` exactly as a flow would (CSV parsing,
   batches of ``--batch`` records, the move to ``archive/`` after the last batch), so that the
   subprocess's peak RSS is the transport's own, and checks that every row arrived once.

Prints rows/s, MB/s and the peak RSS; the last line is one JSON object with the figures.
Not part of the test suite (it takes minutes). ``--keep`` keeps the generated file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = "id;code;name;city;country;amount;updated_at\n"
CHUNK_ROWS = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="file size in GiB (default 2)")
    parser.add_argument("--batch", type=int, default=10_000, help="records per batch")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--read", nargs=2, metavar=("URL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read(args.read[0], args.read[1], args.batch)
        return
    url = os.environ.get("ERPBRIDGE_TEST_SFTP")
    started = url is None
    if url is None:
        url = subprocess.run(
            ["bash", str(ROOT / "scripts" / "sshd.sh"), "start"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    try:
        run(url, args.gb, args.batch, args.keep)
    finally:
        if started:
            subprocess.run(["bash", str(ROOT / "scripts" / "sshd.sh"), "stop"], check=True)


def run(url: str, gb: float, batch: int, keep: bool) -> None:
    parts = urlsplit(url)
    data = Path(parse_qs(parts.query)["dir"][0])
    folder = f"bench-{os.getpid()}"
    inbox = data / "files" / folder
    inbox.mkdir()
    shutil.chown(inbox, parts.username)
    try:
        started = time.perf_counter()
        rows, size = generate(inbox / "orders.csv", int(gb * 1024**3), parts.username or "")
        print(
            f"generated {rows:,} rows, {size / 1024**2:,.0f} MiB in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        child = subprocess.run(
            [sys.executable, __file__, "--batch", str(batch), "--read", url, folder],
            check=False,
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise SystemExit(f"reading failed:\n{child.stderr}")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        if figures["rows"] != rows:
            raise SystemExit(f"read {figures['rows']} rows, expected {rows}")
        if not (inbox / "archive" / "orders.csv").exists():
            raise SystemExit("the file was not archived")
        figures.update(file_mib=round(size / 1024**2), batch=batch)
        print(
            f"read {figures['rows']:,} rows in {figures['seconds']:.1f} s: "
            f"{figures['rows_per_s']:,.0f} rows/s, {figures['mib_per_s']:.1f} MiB/s; "
            f"peak RSS {figures['peak_rss_mib']:.0f} MiB "
            f"({figures['rss_before_mib']:.0f} MiB before reading)"
        )
        print(json.dumps(figures))
    finally:
        if not keep:
            shutil.rmtree(inbox)


def generate(path: Path, size: int, owner: str) -> tuple[int, int]:
    """Rows until the file holds ``size`` bytes; returns (rows, bytes). One block of rows is
    formatted once and written again and again: the transport does not care, and formatting
    2 GiB row by row would take minutes."""
    block = "".join(
        f"{i};C-{i:09d};Customer {i} GmbH & Co. KG;Musterstadt {i % 997};DE;"
        f"{i % 100_000}.{i % 100:02d};2026-11-{1 + i % 28:02d}T08:15:00Z\n"
        for i in range(CHUNK_ROWS)
    ).encode("utf-8")
    rows = 0
    with path.open("wb") as fh:
        written = fh.write(HEADER.encode("utf-8"))
        while written < size:
            written += fh.write(block)
            rows += CHUNK_ROWS
    shutil.chown(path, owner)
    return rows, written


def read(url: str, folder: str, batch: int) -> None:
    """The measured part: stream the folder's files through the transport, acknowledging each
    batch as the engine does after its commit."""
    from erpbridge.transports.files.options import FolderStreamOptions
    from erpbridge.transports.files.sftp.transport import SftpChannelOptions, SftpTransport

    parts = urlsplit(url)
    data = Path(parse_qs(parts.query)["dir"][0])
    options = SftpChannelOptions(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 22,
        username=parts.username or "erpsftp",
        path=folder,
        known_hosts=str(data / "known_hosts"),
        private_key=str(data / "id_ed25519"),
        min_age_seconds=0,
        max_file_mb=1024 * 1024,  # the point is a big file
    )
    transport = SftpTransport("bench", options, data)
    stream = FolderStreamOptions(delimiter=";")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = sum(p.stat().st_size for p in (data / "files" / folder).glob("*.csv"))
    rows = 0
    started = time.perf_counter()
    try:
        for chunk in transport.read(stream, None, batch, frozenset({"id", "code"})):
            rows += len(chunk.records)
            if chunk.problems:
                raise SystemExit(f"unexpected problems: {chunk.problems[:3]}")
            chunk.acknowledge()
    finally:
        transport.close()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(seconds, 1),
                "rows_per_s": round(rows / seconds),
                "mib_per_s": round(size / 1024**2 / seconds, 1),
                "peak_rss_mib": round(peak, 1),
                "rss_before_mib": round(rss_before, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
