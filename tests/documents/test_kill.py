"""Documents under ``kill -9``: workers issuing and delivering numbered credit notes die at random
moments; after the restarts every document is delivered exactly once per target, with the bytes
stored in the hub, and the sequence has no gap and no duplicate."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from documents.claims import claim, feed, hub_folder, write_config
from erpbridge.store import open_store
from erpbridge.store.tables import deliveries, documents

CLAIMS = 150
EDI = """
  credit_note_edi:
    entity: warranty_claim
    format: edifact
    template: templates/credit_note.edi.j2
    numbering: {sequence: credit_note, format: "CN-{year}-{seq:06d}"}
    edifact: {message: INVOIC, sender: "4000000000001:14", recipient: "4711"}
"""
FLOWS = """
  - name: edi-archive
    channel: archive
    entity: warranty_claim
    direction: out
    document: credit_note_edi
  - name: edi-dealer
    channel: dealer
    entity: warranty_claim
    direction: out
    document: credit_note_edi
"""
DEALER = """
  dealer:
    system: folder
    options: {path: out}
"""


def worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = ["worker", "--interval", "0.05", "--lease", "1", "-c", str(config)]
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "erpbridge", *argv],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
        )


def open_deliveries(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(deliveries.c.state != "delivered")
        return int(conn.execute(query).scalar_one())


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_killed_workers_leave_every_document_delivered_once_and_no_gap(
    tmp_path: Path, hub_url: str
) -> None:
    root = hub_folder(tmp_path)
    config = write_config(root, hub_url, EDI, FLOWS, channels=DEALER)
    engine = open_store(hub_url)
    feed(config, engine, *(claim(f"WC-{i:04d}") for i in range(CLAIMS)))
    log = root / "workers.log"
    rng = random.Random(17)
    kills = 0
    deadline = time.monotonic() + 240
    while open_deliveries(engine) and time.monotonic() < deadline:
        victims = [worker(config, log) for _ in range(2)]
        time.sleep(rng.uniform(0.6, 1.6))  # start-up (~0.5 s), then some deliveries
        pending = open_deliveries(engine)
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
        if pending:
            kills += 1
        if kills >= 4:
            break
    # A last worker finishes what the killed ones left (their leases expire after 1 s).
    survivor = worker(config, log)
    try:
        while open_deliveries(engine) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        survivor.terminate()
        survivor.wait(20)
    assert kills >= 1, "no worker was killed while deliveries were open"
    with engine.connect() as conn:
        left = conn.execute(
            select(
                deliveries.c.flow, deliveries.c.key, deliveries.c.state, deliveries.c.last_error
            ).where(deliveries.c.state != "delivered")
        ).all()
    assert left == [], log.read_text("utf-8")[-2000:]

    with engine.connect() as conn:
        stored = conn.execute(
            select(documents.c.number, documents.c.seq, documents.c.sha256, documents.c.key)
        ).all()
        last = conn.execute(text("SELECT last FROM document_sequences")).scalar_one()
        states = conn.execute(
            select(deliveries.c.flow, func.count()).group_by(deliveries.c.flow)
        ).all()
    engine.dispose()
    # One document per claim, numbered 1..CLAIMS without gap or duplicate.
    assert sorted(row.seq for row in stored) == list(range(1, CLAIMS + 1)) and last == CLAIMS
    assert len({row.key for row in stored}) == CLAIMS
    assert dict(states) == {"edi-archive": CLAIMS, "edi-dealer": CLAIMS}
    by_number = {row.number: row.sha256 for row in stored}
    # Each target holds exactly the stored documents, byte for byte, once each.
    archived = sorted((root / "archive" / "credit_note_edi").rglob("*.edi"))
    dealt = sorted((root / "out").glob("*.edi"))
    for files in (archived, dealt):
        assert sorted(f.stem for f in files) == sorted(by_number)
        for f in files:
            assert hashlib.sha256(f.read_bytes()).hexdigest() == by_number[f.stem], f
    # Nothing half-written left behind by a killed write.
    assert not [p for p in (root / "out").iterdir() if not p.name.endswith(".edi")]
