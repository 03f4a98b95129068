"""A document's SFTP target down: the delivery fails with the channel and the cause and is retried;
the document keeps its number (none is taken again), and when the server is back the file on it
is the stored document, byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from documents.claims import claim, deliver, feed, hub_folder, write_config
from erpbridge.store import open_store
from erpbridge.store.tables import deliveries, documents
from hubprocess import free_port
from integration.sftp_server import sftp_server

EDI = """
  credit_note_edi:
    entity: warranty_claim
    format: edifact
    template: templates/credit_note.edi.j2
    numbering: {sequence: credit_note, format: "C{year}{seq:05d}"}
    edifact: {message: INVOIC, sender: "4000000000001:14", recipient: "4711"}
"""
FLOW = """
  - name: edi-dealer
    channel: dealer
    entity: warranty_claim
    direction: out
    document: credit_note_edi
    retry: {max_attempts: 5, backoff_s: 0.001, min_delay_s: 0}
"""


def dealer(host: str, port: int, path: str, key: Path, known_hosts: Path) -> str:
    return f"""
  dealer:
    system: sftp
    options: {{host: "{host}", port: {port}, username: "{sftp_server().user}",
               private_key: "{key}", known_hosts: "{known_hosts}", path: "{path}",
               connect_timeout: 5}}
"""


@pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)
def test_a_document_waits_out_its_sftp_target_and_arrives_with_its_number(
    tmp_path: Path, hub_url: str
) -> None:
    server = sftp_server()
    root = hub_folder(tmp_path)
    with server.box("in") as box:
        down = dealer(server.host, free_port(), f"{box}/in", server.key, server.known_hosts)
        config = write_config(root, hub_url, EDI, FLOW, channels=down)
        engine = open_store(hub_url)
        feed(config, engine, claim("WC-1"))

        stats = deliver(config, engine)
        assert (stats.delivered, stats.dead) == (0, 0)
        with engine.connect() as conn:
            state, error = conn.execute(select(deliveries.c.state, deliveries.c.last_error)).one()
            stored = conn.execute(select(documents.c.number, documents.c.sha256)).all()
        assert state == "failed"
        assert error is not None and "channel 'dealer'" in error, error
        assert "connection refused" in error.lower() or "cannot reach" in error.lower(), error
        # Issued once, before the write: its number is kept for the retry.
        [(number, sha256)] = stored

        up = dealer(server.host, server.port, f"{box}/in", server.key, server.known_hosts)
        config = write_config(root, hub_url, EDI, FLOW, channels=up)
        assert deliver(config, engine).delivered == 1
        with engine.connect() as conn:
            assert conn.execute(select(documents.c.number)).scalars().all() == [number]
        engine.dispose()
        [edi] = (server.files / box / "in").iterdir()
        assert edi.name == f"{number}.edi"
        assert hashlib.sha256(edi.read_bytes()).hexdigest() == sha256
