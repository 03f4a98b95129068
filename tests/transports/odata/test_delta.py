"""OData V4 delta reads (``delta: true``): the first run reads the entity set with
``Prefer: odata.track-changes`` and keeps the ``@odata.deltaLink``; the next reads that link, whose
changed entities update records and whose ``@removed`` entries become tombstones (issue 19 item 2).

SAP CAP, the suite's real OData server, has no change tracking, so the delta answers here are
reproduced from the OData specification (OData JSON Format 4.01, "Delta Payload": a context
ending in ``$delta``, ``@removed: {"reason": "deleted"}`` with the key in ``@id``, the next
``@odata.deltaLink``) by a local server; the hub runs as ``erpbridge sync`` processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from erpbridge import open_store
from erpbridge.transports.odata.delta import is_removed, removed_key
from erpbridge.transports.odata.edm import parse_metadata
from erpbridge.transports.odata.transport import ODataStreamOptions
from httpserve import QuietHandler, Served, serve_handler
from hubprocess import cli_ok, run_cli
from integration.versions import actions

METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Crm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityContainer Name="C"><EntitySet Name="Partners" EntityType="Crm.Partner"/>
        <EntitySet Name="Lines" EntityType="Crm.Line"/></EntityContainer>
      <EntityType Name="Partner"><Key><PropertyRef Name="ID"/></Key>
        <Property Name="ID" Type="Edm.String" Nullable="false"/>
        <Property Name="Name" Type="Edm.String"/>
      </EntityType>
      <EntityType Name="Line"><Key><PropertyRef Name="Doc"/><PropertyRef Name="No"/></Key>
        <Property Name="Doc" Type="Edm.String" Nullable="false"/>
        <Property Name="No" Type="Edm.Int32" Nullable="false"/>
      </EntityType>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""

CONTEXT = "$metadata#Partners"

CONFIG = """
hub: {{database_url: "sqlite:///{root}/hub.db"}}
entities:
  partner:
    key: [code]
    fields:
      code: {{type: string, required: true}}
      name: {{type: string, required: true}}
channels:
  crm:
    system: odata
    options: {{base_url: "{url}/odata/"}}
flows:
  - name: partners-in
    channel: crm
    entity: partner
    direction: in
    source: {{entity_set: Partners, delta: true, page_size: 2}}
    key: ID
    mapping: {{code: ID, name: Name}}
"""


class DeltaService:
    """The service's state: partners, whether it tracks changes, the requests it saw."""

    def __init__(self) -> None:
        self.partners = {"P1": "Ada", "P2": "Bea", "P3": "Cem"}
        self.tracks = True
        self.requests: list[tuple[str, str]] = []  # (path, Prefer header)

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == "/odata/Partners?$deltatoken=1":
            # What changed since token 1: P2 renamed, P3 deleted (a V4.01 delta payload).
            self.partners["P2"] = "Bea Neu"
            self.partners.pop("P3", None)
            return 200, {
                "@odata.context": f"{CONTEXT}/$delta",
                "value": [
                    {"@id": "Partners('P2')", "ID": "P2", "Name": "Bea Neu"},
                    {"@removed": {"reason": "deleted"}, "@id": "Partners('P3')"},
                ],
                "@odata.deltaLink": "Partners?$deltatoken=2",
            }
        if path == "/odata/Partners?$deltatoken=2":  # expired
            error = {"code": "410", "message": "The delta token has expired"}
            return 410, {"error": error}
        rows = [{"ID": k, "Name": v} for k, v in sorted(self.partners.items())]
        if "$skiptoken=2" in path:
            body: dict[str, Any] = {"@odata.context": CONTEXT, "value": rows[2:]}
            if self.tracks:
                body["@odata.deltaLink"] = "Partners?$deltatoken=1"
            return 200, body
        return 200, {
            "@odata.context": CONTEXT,
            "value": rows[:2],
            "@odata.nextLink": "Partners?$skiptoken=2",
        }


@pytest.fixture
def service() -> Iterator[tuple[DeltaService, Served]]:
    state = DeltaService()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Prefer", "")))
            if self.path.startswith("/odata/$metadata"):
                status, body, kind = 200, METADATA, "application/xml"
            else:
                status, answer = state.answer(self.path)
                body, kind = json.dumps(answer).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as served:
        yield state, served


@pytest.fixture
def root(tmp_path: Path, service: tuple[DeltaService, Served]) -> Path:
    (tmp_path / "erpbridge.yaml").write_text(
        CONFIG.format(root=tmp_path, url=service[1].url), encoding="utf-8"
    )
    return tmp_path


def test_a_delta_link_updates_one_record_and_tombstones_another(
    root: Path, service: tuple[DeltaService, Served]
) -> None:
    state = service[0]
    assert _counts(cli_ok(root, "sync", "partners-in")) == [3, 3, 0, 0, 0, 0]
    reads = [(p, prefer) for p, prefer in state.requests if "Partners" in p]
    assert len(reads) == 2 and all("odata.track-changes" in prefer for _, prefer in reads)
    assert "$orderby" not in reads[0][0] and "$top" not in reads[0][0], reads
    assert "Partners?$deltatoken=1" in cli_ok(root, "cursor", "show", "partners-in")

    # read, created, updated, unchanged, deleted, rejected
    assert _counts(cli_ok(root, "sync", "partners-in")) == [2, 0, 1, 0, 1, 0]
    assert state.requests[-1][0] == "/odata/Partners?$deltatoken=1"
    listed = cli_ok(root, "records", "partner")
    assert re.search(r"P3 +│ 2 \(deleted\)", listed) and "Bea Neu" in listed, listed
    shown = cli_ok(root, "records", "partner", "--key", "P3")
    assert "DELETED" in shown and "Partners('P3') (removed)" in shown, shown
    engine = open_store(f"sqlite:///{root}/hub.db")
    try:
        assert actions(engine, "partner", "P3") == ["created", "deleted", "(deleted)"]
        assert actions(engine, "partner", "P2") == ["created", "updated"]
        assert actions(engine, "partner", "P1") == ["created"]
    finally:
        engine.dispose()
    assert "Partners?$deltatoken=2" in cli_ok(root, "cursor", "show", "partners-in")

    # The service forgot token 2: the run fails and says how to start over.
    _fails_saying(root, "HTTP 410", "erpbridge cursor reset")
    cli_ok(root, "cursor", "reset", "partners-in")
    assert _counts(cli_ok(root, "sync", "partners-in")) == [2, 0, 0, 2, 0, 0]  # read anew
    assert state.requests[-1][1].startswith("odata.track-changes")
    assert "Partners?$deltatoken=1" in cli_ok(root, "cursor", "show", "partners-in")


def _counts(out: str) -> list[int]:
    """The counters of ``erpbridge sync``'s one succeeded run: read … rejected."""
    line = re.search(r"succeeded(.*)", out)
    assert line is not None, out
    return [int(n) for n in re.findall(r"\b\d+\b(?!\.)", line.group(1))][:6]


def test_a_service_without_change_tracking_is_a_clear_error(
    root: Path, service: tuple[DeltaService, Served]
) -> None:
    service[0].tracks = False
    _fails_saying(root, "Partners: delta: true", "without an @odata.deltaLink")


def _fails_saying(root: Path, *parts: str) -> None:
    """``erpbridge sync partners-in`` fails with a message naming the flow, the channel and
    ``parts``, and no traceback."""
    done = run_cli(root, "sync", "partners-in")
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    for part in ("partners-in", "'crm'", *parts):
        assert part in said, said
    assert "Traceback" not in said


# -- removed entries, without a server -------------------------------------------------------------

_META = parse_metadata(METADATA)
PARTNER = _META.entity_type("Partners")
LINE = _META.entity_type("Lines")


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"@removed": {"reason": "deleted"}, "@id": "Partners('P1')"}, {"ID": "P1"}),
        ({"@removed": {"reason": "changed"}, "@id": "Partners(ID='O''Brien')"}, {"ID": "O'Brien"}),
        ({"@removed": {}, "@id": "http://h/odata/Partners('a%2Cb')"}, {"ID": "a,b"}),
        ({"@removed": {"reason": "deleted"}, "ID": "P9"}, {"ID": "P9"}),
        ({"@odata.context": "#Partners/$deletedEntity", "id": "Partners('P4')"}, {"ID": "P4"}),
    ],
)
def test_a_removed_entry_names_its_key(entry: dict[str, Any], key: dict[str, Any]) -> None:
    assert PARTNER is not None
    assert is_removed(entry)
    assert removed_key(entry, PARTNER) == key


def test_a_compound_key_is_read_by_name_and_a_missing_part_is_named() -> None:
    assert LINE is not None
    entry = {"@removed": {"reason": "deleted"}, "@id": "Lines(No=7,Doc='D,1')"}
    assert removed_key(entry, LINE) == {"Doc": "D,1", "No": 7}
    with pytest.raises(ValueError, match="lacks the key No"):
        removed_key({"@removed": {}, "@id": "Lines(Doc='D')"}, LINE)
    with pytest.raises(ValueError, match="without its key"):
        removed_key({"@removed": {}}, LINE)
    assert not is_removed({"ID": "P1", "Name": "x"})


def test_delta_and_cursor_field_are_not_taken_together() -> None:
    with pytest.raises(ValidationError, match="leave out cursor_field"):
        ODataStreamOptions(entity_set="Partners", delta=True, cursor_field="modifiedAt")
