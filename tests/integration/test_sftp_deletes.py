"""Deletes in files a partner drops on a real OpenSSH sshd (``scripts/sshd.sh``): a CSV row whose
operation column says ``D`` becomes a tombstone of the record it names, by the partner's id
(issue 19, item 2)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from erpbridge import FlowRunner, load_config
from erpbridge.store.read import EVERYTHING, record_view
from integration.sftp_server import Sftp
from integration.test_sftp import CUSTOMERS_IN, box, hub, server, upload, write_config

__all__ = ["box", "hub", "server"]  # the fixtures this module borrows


def test_a_row_marked_d_deletes_its_customer(
    tmp_path: Path, server: Sftp, box: str, hub: Engine
) -> None:
    flow = {**CUSTOMERS_IN, "delete_marker": {"field": "Op", "value": "D"}}
    path = write_config(tmp_path, server, box, [flow])
    runner = FlowRunner(load_config(path), hub)
    upload(server, f"{box}/inbox/customers-1.csv", "KdNr;Name;Limit;Op\nC1;Anna;1;\nC2;Bob;2;\n")
    assert runner.run("customers-in").created == 2
    upload(server, f"{box}/inbox/customers-2.csv", "KdNr;Name;Limit;Op\nC2;;;D\nC9;;;D\n")
    done = runner.run("customers-in")
    assert (done.status, done.deleted, done.rejected) == ("succeeded", 1, 0), done.error
    # C9 was never sent: nothing to delete, counted unchanged.
    assert (done.read, done.unchanged) == (2, 1)
    with hub.connect() as conn:
        gone = record_view(conn, EVERYTHING, "customer", "C2")
        kept = record_view(conn, EVERYTHING, "customer", "C1")
    assert gone is not None and gone.deleted
    assert kept is not None and not kept.deleted
