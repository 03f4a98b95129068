"""Hostile XML and JSON files in a drop folder, read by ``erpbridge sync`` started as a user starts
it: a file nested thousands of levels deep, a billion-laughs bomb, an external entity, a UTF-16
DOCTYPE each go to ``error/`` with their reason, and the good files after them land in the same
run. JSON nested deeper than the hub stores (255 levels for orjson's writer) is refused the same
way: a JSON file whole, a JSONL line by line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select

from erpbridge.jsondepth import MAX_JSON_DEPTH
from erpbridge.store.tables import records, rejected, runs
from erpbridge.transports.xmlguard import MAX_DEPTH

CONFIG = """
hub:
  database_url: sqlite:///{root}/erpbridge.db
entities:
  article:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: {{type: string}}
channels:
  shop:
    system: folder
    options: {{path: inbox}}
flows:
  - name: articles-in
    channel: shop
    entity: article
    direction: in
    source: {{pattern: "articles*.xml"}}
    mapping:
      code: nr
      name: name
  - name: json-in
    channel: shop
    entity: article
    direction: in
    source: {{pattern: "articles*.json"}}
    mapping:
      code: nr
      name: name
  - name: lines-in
    channel: shop
    entity: article
    direction: in
    source: {{pattern: "lines*.jsonl"}}
    mapping:
      code: nr
      name: name
  - name: idocs-in
    channel: shop
    entity: article
    direction: in
    source: {{pattern: "idocs*.xml", format: idoc}}
    mapping:
      code: EDI_DC40.DOCNUM
      name: EDI_DC40.MESTYP
"""

DEEP = 5000
BOMB = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
REFUSED = "DOCTYPE/entity declarations are not accepted"
TOO_DEEP = f"XML nested more than {MAX_DEPTH} elements deep"


def _idoc(docnum: str, inner: str = "") -> str:
    return (
        f'<ORDERS05><IDOC BEGIN="1"><EDI_DC40 SEGMENT="1"><DOCNUM>{docnum}</DOCNUM>'
        f"<IDOCTYP>ORDERS05</IDOCTYP><MESTYP>ORDERS</MESTYP></EDI_DC40>{inner}</IDOC></ORDERS05>"
    )


def _deep(tag: str) -> str:
    return f"<{tag}>" * DEEP + "x" + f"</{tag}>" * DEEP


HOSTILE: dict[str, tuple[bytes, str]] = {
    "articles1-deep.xml": (f"<r><a><nr>D</nr>{_deep('x')}</a></r>".encode(), TOO_DEEP),
    "articles2-bomb.xml": (f"{BOMB}<r><a><nr>&c;</nr></a></r>".encode(), REFUSED),
    "articles3-external.xml": (f"{EXTERNAL}<r><a><nr>&e;</nr></a></r>".encode(), REFUSED),
    "articles4-utf16.xml": (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]>'
        "<r><a><nr>&e;</nr></a></r>".encode("utf-16"),
        REFUSED,
    ),
    "idocs1-deep.xml": (_idoc("0001", f"<E1EDK01>{_deep('E1')}</E1EDK01>").encode(), TOO_DEEP),
    "idocs2-bomb.xml": (f"{BOMB}{_idoc('&c;')}".encode(), REFUSED),
    "idocs3-external.xml": (f"{EXTERNAL}{_idoc('&e;')}".encode(), REFUSED),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "erpbridge.yaml").write_text(CONFIG.format(root=tmp_path), encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, (content, _) in HOSTILE.items():
        (inbox / name).write_bytes(content)
    # Named after the hostile ones: read last, in name order.
    (inbox / "articles9-good.xml").write_text(
        "<r><a><nr>A-1</nr><name>Bolt</name></a><a><nr>A-2</nr><name>Nut</name></a></r>",
        encoding="utf-8",
    )
    (inbox / "idocs9-good.xml").write_text(_idoc("0000481516"), encoding="utf-8")
    return tmp_path


def _sync(root: Path, *flows: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    env.pop("ERPBRIDGE_DATABASE_URL", None)
    argv = [sys.executable, "-m", "erpbridge", "sync", "-c", str(root / "erpbridge.yaml"), *flows]
    return subprocess.run(
        argv, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_hostile_files_go_to_error_and_the_next_files_land(root: Path) -> None:
    done = _sync(root, "articles-in", "idocs-in")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output and "RecursionError" not in output
    inbox = root / "inbox"
    assert sorted(p.name for p in inbox.glob("*.xml")) == []  # nothing left to block the inbox
    assert sorted(p.name for p in (inbox / "archive").iterdir()) == [
        "articles9-good.xml",
        "idocs9-good.xml",
    ]
    for name, (_, reason) in HOSTILE.items():
        assert (inbox / "error" / name).exists(), name
        assert reason in (inbox / "error" / f"{name}.reason.txt").read_text(encoding="utf-8")
    engine = create_engine(f"sqlite:///{root / 'erpbridge.db'}")
    with engine.connect() as conn:
        keys = conn.execute(select(records.c.key).order_by(records.c.key)).scalars().all()
        problems = dict(conn.execute(select(rejected.c.position, rejected.c.reason)).all())
        statuses = conn.execute(select(runs.c.flow, runs.c.status)).all()
    engine.dispose()
    assert keys == ["0000481516", "A-1", "A-2"]
    assert set(problems) == set(HOSTILE)
    for name, (_, reason) in HOSTILE.items():
        assert problems[name].startswith(reason), (name, problems[name])
    assert sorted(statuses) == [("articles-in", "succeeded"), ("idocs-in", "succeeded")]


def _deep_json(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def test_json_nested_too_deep_is_refused_and_the_rest_lands(root: Path) -> None:
    inbox = root / "inbox"
    # 300 levels parse (orjson reads 1024) but could not be stored: the run used to fail on it.
    (inbox / "articles1-deep.json").write_text(
        f'[{{"nr": "J-0", "name": {_deep_json(300)}}}]', encoding="utf-8"
    )
    (inbox / "articles9-good.json").write_text('[{"nr": "J-1", "name": "Washer"}]', "utf-8")
    (inbox / "lines1.jsonl").write_text(
        f'{{"nr": "L-0", "name": {_deep_json(300)}}}\n{{"nr": "L-1", "name": "Pin"}}\n',
        encoding="utf-8",
    )
    done = _sync(root, "json-in", "lines-in")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    too_deep = f"JSON nested more than {MAX_JSON_DEPTH} levels deep (the limit): refused"
    assert (inbox / "error" / "articles1-deep.json").exists()
    assert too_deep in (inbox / "error" / "articles1-deep.json.reason.txt").read_text("utf-8")
    assert sorted(p.name for p in (inbox / "archive").iterdir()) == [
        "articles9-good.json",
        "lines1.jsonl",
    ]
    engine = create_engine(f"sqlite:///{root / 'erpbridge.db'}")
    with engine.connect() as conn:
        keys = conn.execute(select(records.c.key).order_by(records.c.key)).scalars().all()
        problems = dict(conn.execute(select(rejected.c.position, rejected.c.reason)).all())
    engine.dispose()
    assert keys == ["J-1", "L-1"]
    assert problems == {"articles1-deep.json": too_deep, "lines1.jsonl:1": too_deep}
