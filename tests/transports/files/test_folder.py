"""The folder transport against real files in a temporary inbox."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from erpbridge.errors import SourceUnavailable
from erpbridge.transports import Transport, load_transport
from erpbridge.transports.base import Batch
from erpbridge.transports.files.folder import (
    FolderChannelOptions,
    FolderStreamOptions,
    FolderTransport,
)


def transport(tmp_path: Path, **options: Any) -> FolderTransport:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return FolderTransport("shop", FolderChannelOptions(path="inbox", **options), tmp_path)


def drop(tmp_path: Path, name: str, content: str | bytes) -> Path:
    file = tmp_path / "inbox" / name
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content, encoding="utf-8")
    return file


def read_all(
    folder: FolderTransport,
    batch_size: int = 100,
    required: frozenset[str] = frozenset(),
    **stream: Any,
) -> list[Batch]:
    """Read everything, acknowledging each batch as the engine does after its commit."""
    batches = []
    for batch in folder.read(FolderStreamOptions(**stream), None, batch_size, required):
        batches.append(batch)
        batch.acknowledge()
    return batches


def records(batches: list[Batch]) -> list[dict[str, Any]]:
    return [dict(r.data) for b in batches for r in b.records]


def problems(batches: list[Batch]) -> list[tuple[str, str]]:
    return [(p.position, p.reason) for b in batches for p in b.problems]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- contract and options -----------------------------------------------------------------


def test_registered_and_fits_the_protocol(tmp_path: Path) -> None:
    assert load_transport("folder") is FolderTransport
    assert isinstance(transport(tmp_path), Transport)


def test_options_are_strict() -> None:
    with pytest.raises(ValidationError):
        FolderChannelOptions(path="x", unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FolderChannelOptions(path="x", archive="../elsewhere")
    with pytest.raises(ValidationError):
        FolderChannelOptions(path="x", encoding="no-such-codec")
    with pytest.raises(ValidationError):
        FolderStreamOptions(delimiter=";;")
    with pytest.raises(ValidationError):
        FolderStreamOptions(pattern="sub/*.csv")


def test_missing_folder_is_source_unavailable(tmp_path: Path) -> None:
    folder = FolderTransport("shop", FolderChannelOptions(path="nowhere"), tmp_path)
    with pytest.raises(SourceUnavailable, match=r"'shop'.*nowhere"):
        read_all(folder)
    health = folder.health()
    assert not health.ok
    assert "nowhere" in health.detail


def test_health_counts_waiting_files(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id\n1\n")
    drop(tmp_path, "b.json", "[]")
    drop(tmp_path, ".hidden.csv", "id\n")
    health = folder.health()
    assert health.ok
    assert "2 file(s)" in health.detail
    assert names(tmp_path / "inbox") == [".hidden.csv", "a.csv", "b.json"]  # nothing created


# -- listing and moving -------------------------------------------------------------------


def test_csv_batches_span_the_file_and_archive_after_acknowledge(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "orders.csv", "id,name\n1,a\n2,b\n3,c\n4,d\n5,e\n")
    stream = FolderStreamOptions()
    batches = list(folder.read(stream, None, 2, frozenset({"id"})))

    assert [len(b.records) for b in batches] == [2, 2, 1]
    assert [r.position for b in batches for r in b.records] == [
        f"orders.csv:{line}" for line in range(2, 7)
    ]
    assert records(batches)[0] == {"id": "1", "name": "a"}
    assert all(b.cursor is None and not b.problems for b in batches)
    assert [len(b.on_commit) for b in batches] == [0, 0, 1]

    for batch in batches[:2]:
        batch.acknowledge()
    assert names(tmp_path / "inbox") == ["orders.csv"]
    batches[2].acknowledge()
    assert names(tmp_path / "inbox") == ["archive"]
    assert names(tmp_path / "inbox" / "archive") == ["orders.csv"]


def test_exact_multiple_of_batch_size_has_no_trailing_empty_batch(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id\n1\n2\n3\n4\n")
    batches = read_all(folder, batch_size=2)
    assert [len(b.records) for b in batches] == [2, 2]
    assert names(tmp_path / "inbox" / "archive") == ["a.csv"]


def test_files_in_name_order_and_empty_file_archived(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "b.csv", "id\n2\n")
    drop(tmp_path, "a.csv", "id\n1\n")
    drop(tmp_path, "c.csv", "")
    batches = read_all(folder)
    assert records(batches) == [{"id": "1"}, {"id": "2"}]
    assert len(batches) == 3
    assert names(tmp_path / "inbox" / "archive") == ["a.csv", "b.csv", "c.csv"]


def test_hidden_temporary_unmatched_and_subfolders_ignored(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "orders.csv", "id\n1\n")
    for name in (".orders.csv", "orders.csv.tmp", "orders.csv.part", "notes.txt"):
        drop(tmp_path, name, "id\n9\n")
    (tmp_path / "inbox" / "sub.csv").mkdir()
    batches = read_all(folder, pattern="*.csv")
    assert records(batches) == [{"id": "1"}]
    assert "notes.txt" in names(tmp_path / "inbox")
    assert names(tmp_path / "inbox" / "archive") == ["orders.csv"]


def test_min_age_skips_a_file_still_being_written(tmp_path: Path) -> None:
    folder = transport(tmp_path, min_age_seconds=60)
    drop(tmp_path, "fresh.csv", "id\n1\n")
    old = drop(tmp_path, "old.csv", "id\n2\n")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert records(read_all(folder)) == [{"id": "2"}]
    assert "fresh.csv" in names(tmp_path / "inbox")


def test_name_clash_in_archive_gets_a_suffix(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    for expected in (1, 2, 3):
        drop(tmp_path, "orders.csv", f"id\n{expected}\n")
        read_all(folder)
    archived = names(tmp_path / "inbox" / "archive")
    assert len(archived) == 3
    assert "orders.csv" in archived
    assert all(n.startswith("orders.") and n.endswith(".csv") for n in archived)
    contents = {(tmp_path / "inbox" / "archive" / n).read_text() for n in archived}
    assert contents == {"id\n1\n", "id\n2\n", "id\n3\n"}


def test_unacknowledged_file_is_read_again(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id\n1\n")
    list(folder.read(FolderStreamOptions(), None, 10, frozenset()))
    assert records(read_all(folder)) == [{"id": "1"}]


def test_acknowledging_twice_is_harmless(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id\n1\n")
    [batch] = read_all(folder)
    batch.acknowledge()
    assert names(tmp_path / "inbox" / "archive") == ["a.csv"]


def test_early_close_releases_the_file(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id\n" + "".join(f"{i}\n" for i in range(10)))
    drop(tmp_path, "b.xml", "<r>" + "<x>1</x>" * 10 + "</r>")
    for stream in (FolderStreamOptions(pattern="*.csv"), FolderStreamOptions(pattern="*.xml")):
        reader = folder.read(stream, None, 2, frozenset())
        assert isinstance(reader, Generator)
        next(reader)
        reader.close()
    gc.collect()  # an unclosed file would raise ResourceWarning (filterwarnings = error)
    assert names(tmp_path / "inbox") == ["a.csv", "b.xml"]


# -- broken files -------------------------------------------------------------------------


def test_wrong_header_moves_the_file_to_error_with_a_reason(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "orders.csv", "id,name\n1,a\n")
    batches = read_all(folder, required=frozenset({"id", "sku", "qty"}))
    assert records(batches) == []
    [(position, reason)] = problems(batches)
    assert position == "orders.csv"
    assert reason == "header lacks column(s) 'qty', 'sku'; found: id, name"
    error = tmp_path / "inbox" / "error"
    assert names(error) == ["orders.csv", "orders.csv.reason.txt"]
    assert "'qty', 'sku'" in (error / "orders.csv.reason.txt").read_text()


def test_broken_file_waits_for_acknowledge_before_moving(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.json", "{not json")
    [batch] = list(folder.read(FolderStreamOptions(), None, 10, frozenset()))
    assert names(tmp_path / "inbox") == ["a.json"]
    batch.acknowledge()
    assert names(tmp_path / "inbox" / "error") == ["a.json", "a.json.reason.txt"]


def test_oversized_file_is_not_read(tmp_path: Path) -> None:
    folder = transport(tmp_path, max_file_mb=0.0001)
    drop(tmp_path, "big.csv", "id\n" + "1\n" * 100)
    batches = read_all(folder)
    assert records(batches) == []
    assert "oversized" in problems(batches)[0][1]
    assert "big.csv" in names(tmp_path / "inbox" / "error")


def test_unknown_extension_is_a_problem_unless_format_is_set(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.txt", "id\n1\n")
    assert "unknown format" in problems(read_all(folder))[0][1]
    drop(tmp_path, "b.txt", "id\n1\n")
    assert records(read_all(folder, format="csv")) == [{"id": "1"}]


def test_undecodable_bytes_move_the_file_to_error(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id,name\n1,caf\xe9\n".encode("latin-1"))
    batches = read_all(folder)
    assert "cannot decode as utf-8" in problems(batches)[0][1]
    assert "a.csv" in names(tmp_path / "inbox" / "error")


def test_other_encodings_are_read(tmp_path: Path) -> None:
    folder = transport(tmp_path, encoding="latin-1")
    drop(tmp_path, "a.csv", "id,name\n1,caf\xe9\n".encode("latin-1"))
    assert records(read_all(folder)) == [{"id": "1", "name": "café"}]


# -- CSV ----------------------------------------------------------------------------------


def test_ragged_rows_are_rejected_and_the_rest_read(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id,name\n1,a\n2,b,extra\n3\n4,d\n")
    batches = read_all(folder)
    assert records(batches) == [{"id": "1", "name": "a"}, {"id": "4", "name": "d"}]
    found = [p for b in batches for p in b.problems]
    assert [(p.position, p.payload) for p in found] == [
        ("a.csv:3", {"_raw": ["2", "b", "extra"]}),
        ("a.csv:4", {"_raw": ["3"]}),
    ]
    assert "3 cell(s), the header has 2" in found[0].reason
    assert names(tmp_path / "inbox" / "archive") == ["a.csv"]


def test_csv_delimiter_empty_strings_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", 'id;note\n1;"two\nlines"\n\n2;\n')
    batches = read_all(folder, delimiter=";")
    assert records(batches) == [{"id": "1", "note": "two\nlines"}, {"id": "2", "note": ""}]
    assert [r.position for b in batches for r in b.records] == ["a.csv:2", "a.csv:5"]


def test_utf8_bom_is_skipped(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "\ufeffid,name\n1,a\n".encode())
    drop(tmp_path, "b.json", '\ufeff[{"id": 2}]'.encode())
    batches = read_all(folder, required=frozenset({"id"}))
    assert records(batches) == [{"id": "1", "name": "a"}, {"id": 2}]


def test_repeated_header_column_is_broken(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.csv", "id,id\n1,2\n")
    assert "repeats column(s) 'id'" in problems(read_all(folder))[0][1]


# -- JSON and JSONL -----------------------------------------------------------------------


def test_json_array_with_a_non_object_element(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.json", '[{"id": 1}, 7, {"id": 3}]')
    batches = read_all(folder, batch_size=2)
    assert records(batches) == [{"id": 1}, {"id": 3}]
    assert [r.position for b in batches for r in b.records] == ["a.json[0]", "a.json[2]"]
    assert problems(batches) == [("a.json[1]", "a record must be an object, found a number")]
    assert names(tmp_path / "inbox" / "archive") == ["a.json"]


def test_json_records_path_and_single_object(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.json", '{"meta": {}, "data": {"items": [{"id": 1}, {"id": 2}]}}')
    assert records(read_all(folder, records_path="data.items")) == [{"id": 1}, {"id": 2}]
    drop(tmp_path, "b.json", '{"id": 9}')
    assert records(read_all(folder)) == [{"id": 9}]


def test_json_records_path_not_found_is_broken(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.json", '{"data": {"rows": []}}')
    batches = read_all(folder, records_path="data.items")
    assert problems(batches) == [
        ("a.json", "records_path 'data.items': no key 'items' at data"),
    ]
    assert "a.json" in names(tmp_path / "inbox" / "error")


def test_jsonl_broken_line_is_rejected_and_the_rest_read(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.ndjson", '{"id": 1}\n\n{"id": \n[1]\n{"id": 4}\n')
    batches = read_all(folder)
    assert records(batches) == [{"id": 1}, {"id": 4}]
    assert [r.position for b in batches for r in b.records] == ["a.ndjson:1", "a.ndjson:5"]
    found = problems(batches)
    assert [p for p, _ in found] == ["a.ndjson:3", "a.ndjson:4"]
    assert found[0][1].startswith("invalid JSON")
    assert names(tmp_path / "inbox" / "archive") == ["a.ndjson"]


# -- XML ----------------------------------------------------------------------------------

ORDERS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<o:Orders xmlns:o="urn:orders" xmlns:x="urn:x">
  <o:Order id="1" x:channel="web">
    <Customer>  Ann  </Customer>
    <Line sku="A"><Qty>2</Qty></Line>
    <Line sku="B"><Qty>1</Qty></Line>
    <Note>urgent<Flag/></Note>
    <Empty/>
  </o:Order>
  <o:Order id="2"><Customer>Bob</Customer></o:Order>
</o:Orders>
"""


def test_xml_attributes_repeated_children_and_namespaces(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "orders.xml", ORDERS_XML)
    batches = read_all(folder, batch_size=1)
    assert records(batches) == [
        {
            "@id": "1",
            "@channel": "web",
            "Customer": "Ann",
            "Line": [{"@sku": "A", "Qty": "2"}, {"@sku": "B", "Qty": "1"}],
            "Note": {"Flag": "", "#text": "urgent"},
            "Empty": "",
        },
        {"@id": "2", "Customer": "Bob"},
    ]
    assert [r.position for b in batches for r in b.records] == ["orders.xml[0]", "orders.xml[1]"]
    assert names(tmp_path / "inbox" / "archive") == ["orders.xml"]


def test_xml_record_tag_finds_records_at_any_depth(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(
        tmp_path,
        "a.xml",
        "<Export><Header><Item>no</Item></Header><Body><Item k='1'/><Group><Item k='2'/>"
        "</Group></Body></Export>",
    )
    assert records(read_all(folder, record_tag="Item")) == [
        {"#text": "no"},
        {"@k": "1"},
        {"@k": "2"},
    ]


def test_xml_doctype_and_entities_are_refused(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(
        tmp_path,
        "bomb.xml",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r><x>&b;</x></r>',
    )
    batches = read_all(folder)
    assert records(batches) == []
    assert problems(batches) == [("bomb.xml", "DOCTYPE/entity declarations are not accepted")]
    assert names(tmp_path / "inbox" / "error") == ["bomb.xml", "bomb.xml.reason.txt"]


def test_truncated_xml_keeps_earlier_records_and_goes_to_error(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    drop(tmp_path, "a.xml", "<r><x>1</x><x>2</x><x>3</x><x>4</x><x>5")
    batches = list(folder.read(FolderStreamOptions(), None, 2, frozenset()))
    assert [len(b.records) for b in batches] == [2, 2]
    [(position, reason)] = problems(batches)
    assert position == "a.xml"
    assert reason.startswith("XML syntax error")
    assert batches[0].on_commit == []
    assert names(tmp_path / "inbox") == ["a.xml"]
    for batch in batches:
        batch.acknowledge()
    assert names(tmp_path / "inbox" / "error") == ["a.xml", "a.xml.reason.txt"]
