"""Deleted records in the back office, against ``erpbridge run`` served as a subprocess: a row
of a dropped file with the flow's delete marker makes the record's page say it is deleted (its
last payload still shown, the tombstone version in its history) and the entity's list mark it
(issue 19, item 2)."""

from __future__ import annotations

from pathlib import Path

from ui.backoffice import eventually, served_backoffice, signed_in

CONFIG = """
entities:
  partner:
    key: [code]
    fields: {code: {type: string, required: true}, name: string}
channels:
  drop:
    system: folder
    options: {path: inbox, min_age_seconds: 0}
flows:
  - name: partners-in
    channel: drop
    entity: partner
    direction: in
    trigger: {interval: 1s}
    source: {pattern: "*.csv", format: csv, delimiter: ";"}
    key: code
    delete_marker: {field: op, value: D}
    mapping: {code: code, name: name}
"""


def test_a_deleted_record_says_so_on_its_page_and_in_the_list(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    with served_backoffice(root, CONFIG, folders=("inbox",)) as hub:
        first, second = root / "inbox" / "1.csv", root / "inbox" / "2.csv"
        first.write_text("code;name;op\nP1;Kept GmbH;\nP2;Gone KG;\n", encoding="utf-8")
        eventually(lambda: not first.exists(), what="1.csv read")
        second.write_text("code;name;op\nP2;;D\n", encoding="utf-8")
        eventually(lambda: not second.exists(), what="2.csv read")
        with signed_in(hub, "viewer") as (http, _):

            def deleted_shown() -> bool:
                return "deleted" in http.get("/ui/records/partner/P2").text

            eventually(deleted_shown, what="P2 shown deleted")
            page = http.get("/ui/records/partner/P2").text
            kept = http.get("/ui/records/partner/P1").text
            listing = http.get("/ui/records", params={"entity": "partner"}).text
    assert "version 2" in page and "(its last payload below)" in page and "Gone KG" in page
    assert "Version 2 · deleted" in page
    assert "deleted" not in kept
    assert listing.count('<span class="state dead">deleted</span>') == 1
