"""The folder transport's write side (OUT flows) against real files in a temporary folder."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from erpbridge.errors import FatalError, SourceUnavailable
from erpbridge.transports.base import OutgoingRecord, Writer
from erpbridge.transports.files.filesystems import LocalFileSystem
from erpbridge.transports.files.folder import (
    FolderChannelOptions,
    FolderStreamOptions,
    FolderTargetOptions,
    FolderTransport,
)

CUSTOMERS: list[dict[str, Any]] = [
    {"code": "C1", "name": "Ada & Co <GmbH>", "address": {"city": "Köln", "zip": "50667"}},
    {"code": "C2", "name": 'Bob "the" Builder', "tags": ["a", "b"], "vip": True},
]


def transport(tmp_path: Path) -> FolderTransport:
    (tmp_path / "out").mkdir(exist_ok=True)
    return FolderTransport("shop", FolderChannelOptions(path="out"), tmp_path)


def outgoing(
    data: dict[str, Any], key: str = "", version: int = 1, delivery_id: int = 7
) -> OutgoingRecord:
    key = key or str(data.get("code", "k"))
    return OutgoingRecord(
        delivery_id=delivery_id,
        entity="customer",
        key=key,
        version=version,
        idempotency_key=f"flow:{key}:{version}",
        data=data,
    )


def write(
    folder: FolderTransport, records: list[dict[str, Any]], **target: Any
) -> list[str | None]:
    return folder.write(
        FolderTargetOptions(**target),
        [outgoing(r, delivery_id=7 + i) for i, r in enumerate(records)],
    )


def files(folder: Path) -> list[str]:
    """Every entry in ``folder``, hidden ones (temporary files) included."""
    return sorted(p.name for p in folder.iterdir())


def read_back(folder: FolderTransport, **stream: Any) -> list[dict[str, Any]]:
    batches = list(folder.read(FolderStreamOptions(**stream), None, 100, frozenset()))
    return [dict(r.data) for b in batches for r in b.records]


# -- contract and options -----------------------------------------------------------------


def test_fits_the_writer_protocol(tmp_path: Path) -> None:
    assert isinstance(transport(tmp_path), Writer)
    assert FolderTransport.target_options is FolderTargetOptions


def test_default_names_follow_file_per() -> None:
    assert FolderTargetOptions().name == "{entity}-{key}-v{version}.{ext}"
    assert FolderTargetOptions(file_per="batch").name == "{entity}-{timestamp}-{delivery_id}.{ext}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "{entity}-{customer}.json"}, "unknown placeholder {customer}"),
        ({"name": "{key.__class__}.json"}, "unknown placeholder"),
        ({"name": "{}.json"}, "unknown placeholder"),
        ({"name": "{key:>9}.json"}, "no format spec"),
        ({"name": "{key!r}.json"}, "no format spec"),
        ({"name": "../{key}.json"}, "path separators or '..'"),
        ({"name": "sub/{key}.json"}, "path separators"),
        ({"name": "{key}..json"}, "'..'"),
        ({"name": ".{key}.json"}, "not start with '.'"),
        ({"name": "{key.json"}, "brace"),
        ({"name": "{entity}.json"}, "needs {key} or {delivery_id}"),
        ({"file_per": "batch", "name": "{entity}-{key}.json"}, "cannot be named"),
        ({"file_per": "batch", "name": "{version}-{timestamp}.xml"}, "cannot be named"),
        ({"subfolder": "../elsewhere"}, "without '..'"),
        ({"subfolder": "/abs"}, "relative"),
        ({"encoding": "no-such-codec"}, "unknown encoding"),
        ({"delimiter": ";;"}, "at most 1 character"),
        ({"root_tag": "bad tag"}, "pattern"),
        ({"format": "yaml"}, "format"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_target_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        FolderTargetOptions(**options)


def test_nothing_to_write_writes_nothing(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    assert folder.write(FolderTargetOptions(file_per="batch"), []) == []
    assert files(tmp_path / "out") == []


# -- formats ------------------------------------------------------------------------------


def test_json_file_per_record(tmp_path: Path) -> None:
    names = write(transport(tmp_path), CUSTOMERS)
    assert names == ["customer-C1-v1.json", "customer-C2-v1.json"]
    assert files(tmp_path / "out") == names
    for name, record in zip(names, CUSTOMERS, strict=True):
        assert json.loads((tmp_path / "out" / name).read_text(encoding="utf-8")) == record


def test_json_batch_is_one_array(tmp_path: Path) -> None:
    names = write(transport(tmp_path), CUSTOMERS, file_per="batch")
    assert len(set(names)) == 1 and len(names) == 2
    name = names[0]
    assert name is not None
    assert name.startswith("customer-") and name.endswith("-7.json")
    assert files(tmp_path / "out") == [name]
    assert json.loads((tmp_path / "out" / name).read_text(encoding="utf-8")) == CUSTOMERS


def test_jsonl_record_and_batch(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    [one, _] = write(folder, CUSTOMERS, format="jsonl")
    assert one == "customer-C1-v1.jsonl"
    assert (tmp_path / "out" / one).read_text(encoding="utf-8").count("\n") == 1
    [batch, _] = write(folder, CUSTOMERS, format="jsonl", file_per="batch", subfolder="b")
    lines = (tmp_path / "out" / str(batch)).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == CUSTOMERS


def test_csv_header_is_the_union_of_keys_and_nested_values_are_json(tmp_path: Path) -> None:
    [name, _] = write(transport(tmp_path), CUSTOMERS, format="csv", file_per="batch")
    with (tmp_path / "out" / str(name)).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["code", "name", "address", "tags", "vip"],
        ["C1", "Ada & Co <GmbH>", '{"city":"Köln","zip":"50667"}', "", ""],
        ["C2", 'Bob "the" Builder', "", '["a","b"]', "true"],
    ]


def test_csv_per_record_with_delimiter_and_encoding(tmp_path: Path) -> None:
    [name, _] = write(
        transport(tmp_path), CUSTOMERS, format="csv", delimiter=";", encoding="latin-1"
    )
    text = (tmp_path / "out" / str(name)).read_bytes().decode("latin-1")
    assert (
        text
        == 'code;name;address\r\nC1;Ada & Co <GmbH>;"{""city"":""Köln"",""zip"":""50667""}"\r\n'
    )


def test_xml_elements_escaping_nesting_and_lists(tmp_path: Path) -> None:
    [name, _] = write(
        transport(tmp_path),
        CUSTOMERS,
        format="xml",
        file_per="batch",
        root_tag="Customers",
        record_tag="Customer",
    )
    root = ET.parse(tmp_path / "out" / str(name)).getroot()
    assert root.tag == "Customers"
    first, second = root
    assert first.tag == "Customer"
    assert first.findtext("name") == "Ada & Co <GmbH>"
    assert first.findtext("address/city") == "Köln"
    assert [t.text for t in second.findall("tags")] == ["a", "b"]
    assert second.findtext("vip") == "true"


def test_xml_per_record_has_root_and_one_record(tmp_path: Path) -> None:
    [name, _] = write(transport(tmp_path), CUSTOMERS, format="xml")
    assert name == "customer-C1-v1.xml"
    root = ET.parse(tmp_path / "out" / name).getroot()
    assert root.tag == "records"
    assert [r.tag for r in root] == ["record"]


def test_values_json_does_not_know_are_written_as_text(tmp_path: Path) -> None:
    data = {"code": "C1", "price": Decimal("10.50"), "since": date(2024, 2, 29), "big": 2**70}
    [name] = write(transport(tmp_path), [data])
    assert json.loads((tmp_path / "out" / str(name)).read_text(encoding="utf-8")) == {
        "code": "C1",
        "price": "10.50",
        "since": "2024-02-29",
        "big": str(2**70),
    }


# -- names and idempotency ----------------------------------------------------------------


def test_name_template_and_unsafe_keys(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    target = FolderTargetOptions(name="{delivery_id}_{entity}_{key}@{version}.{ext}")
    [name] = folder.write(target, [outgoing({"a": 1}, key="../ä b/c:d", version=3)])
    assert name == "7_customer__.___b_c_d@3.json"
    [hidden] = folder.write(FolderTargetOptions(name="{key}"), [outgoing({"a": 1}, key="..")])
    assert hidden == "_."  # never '..', never a hidden file
    assert files(tmp_path / "out") == ["7_customer__.___b_c_d@3.json", "_."]


def test_keys_that_clash_once_made_safe_are_refused(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    with pytest.raises(
        FatalError, match=re.escape("would both be written as 'customer-a_b-v1.json'")
    ):
        folder.write(FolderTargetOptions(), [outgoing({}, key="a/b"), outgoing({}, key="a:b")])
    assert files(tmp_path / "out") == []


def test_writing_a_version_twice_gives_the_same_file(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    for fmt in ("json", "jsonl", "csv", "xml"):
        first = write(folder, CUSTOMERS, format=fmt)
        contents = [(tmp_path / "out" / str(n)).read_bytes() for n in first]
        assert write(folder, CUSTOMERS, format=fmt) == first
        assert [(tmp_path / "out" / str(n)).read_bytes() for n in first] == contents
    assert len(files(tmp_path / "out")) == 8


def test_subfolder_is_created_and_part_of_the_id(tmp_path: Path) -> None:
    [name, _] = write(transport(tmp_path), CUSTOMERS, subfolder="to-erp/customers")
    assert name == "to-erp/customers/customer-C1-v1.json"
    assert (tmp_path / "out" / name).is_file()


# -- failures -----------------------------------------------------------------------------


def test_missing_channel_folder_is_source_unavailable_and_not_created(tmp_path: Path) -> None:
    folder = FolderTransport("shop", FolderChannelOptions(path="gone"), tmp_path)
    with pytest.raises(SourceUnavailable, match="gone does not exist"):
        write(folder, CUSTOMERS, subfolder="sub")
    assert not (tmp_path / "gone").exists()


def test_unwritable_value_fails_the_call_before_any_file(tmp_path: Path) -> None:
    records = [*CUSTOMERS, {"code": "C3", "address": {"lines": [object()]}}]
    with pytest.raises(
        FatalError, match=r"customer 'C3' version 1 \(delivery 9\).*address\.lines\[0\]"
    ):
        write(transport(tmp_path), records)
    assert files(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bad key": 1}, "'bad key' is not a valid XML name"),
        ({"a": "bell\x07"}, "cannot appear in XML"),
        ({"a": [[1, 2]]}, r"field 'a\[0\]'.*list directly inside a list"),
        ({"@id": {"x": 1}}, "attribute or #text must be a single value"),
    ],
)
def test_what_xml_cannot_hold_is_fatal(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    with pytest.raises(FatalError, match=message):
        write(transport(tmp_path), [data], format="xml")
    assert files(tmp_path / "out") == []


def test_character_the_encoding_lacks_names_the_record(tmp_path: Path) -> None:
    with pytest.raises(FatalError, match=r"'C2'.*'€' cannot be encoded as latin-1"):
        write(
            transport(tmp_path),
            [{"code": "C1"}, {"code": "C2", "price": "5 €"}],
            format="csv",
            file_per="batch",
            encoding="latin-1",
        )
    assert files(tmp_path / "out") == []


def test_failure_at_the_rename_leaves_no_partial_or_temporary_file(tmp_path: Path) -> None:
    # A folder squatting on the target name makes the final rename fail after the data is
    # written and synced: the temporary file must go and nothing else appear.
    (tmp_path / "out" / "customer-C2-v1.json").mkdir(parents=True)
    with pytest.raises(SourceUnavailable, match="cannot write into"):
        write(transport(tmp_path), CUSTOMERS)
    # C1 was complete before C2 failed; the retry rewrites it identically.
    assert files(tmp_path / "out") == ["customer-C1-v1.json", "customer-C2-v1.json"]
    assert (tmp_path / "out" / "customer-C2-v1.json").is_dir()
    assert list((tmp_path / "out" / "customer-C2-v1.json").iterdir()) == []


def test_subfolder_blocked_by_a_file_is_source_unavailable(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    (tmp_path / "out" / "sub").write_text("not a folder", encoding="utf-8")
    with pytest.raises(SourceUnavailable, match="cannot create folder"):
        write(folder, CUSTOMERS, subfolder="sub")


def test_batch_of_mixed_entities_is_refused(tmp_path: Path) -> None:
    order = OutgoingRecord(1, "order", "O1", 1, "k", {"no": "O1"})
    with pytest.raises(FatalError, match="one entity, got customer, order"):
        transport(tmp_path).write(
            FolderTargetOptions(file_per="batch"), [outgoing({"code": "C1"}), order]
        )


# -- round trip through the read side -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "xml"])
@pytest.mark.parametrize("file_per", ["record", "batch"])
def test_written_files_read_back_through_the_read_side(
    tmp_path: Path, fmt: str, file_per: str
) -> None:
    folder = transport(tmp_path)
    records = [
        {"code": "C1", "name": "Ada & Co <GmbH>", "city": "Köln"},
        {"code": "C2", "name": 'Bob "the"\nBuilder;', "city": ""},
    ]
    write(folder, records, format=fmt, file_per=file_per, delimiter=";", record_tag="customer")
    stream = {"delimiter": ";", "record_tag": "customer"} if fmt != "json" else {}
    assert read_back(folder, pattern=f"*.{fmt}", **stream) == records


def test_xml_attributes_and_text_as_the_read_side_gives_them(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    record = {"@id": "7", "line": [{"@no": "1", "#text": "ten"}, {"@no": "2", "#text": "two"}]}
    write(folder, [record], format="xml", name="order-{key}.xml")
    assert read_back(folder, pattern="*.xml") == [record]


#: Names in a target folder, and whether a write's sweep may remove them when an hour old.
LEFT_BEHIND = {
    ".customer-C7-v1.json.tmp-0123456789ab": True,  # a local write killed before its rename
    ".customer-C8-v1.json.89abcdef0123.part": True,  # an SFTP upload killed likewise
    ".erpbridge-health-0123456789ab.tmp": True,  # a health probe killed likewise
    ".customer-C9-v1.json.tmp-0123456789abc": False,  # one hex digit too many: not ours
    ".customer-C9-v1.json.tmp-0123456789AB": False,  # upper case: not ours
    ".customer-C9-v1.json.tmp-01234567": False,  # too short: not ours
    "customer-C9-v1.json.tmp-0123456789ab": False,  # not hidden: not ours
    ".partner-upload.tmp": False,  # a partner's own temporary file
    ".profile": False,
    "report.tmp": False,
    "customer-C6-v1.json": False,  # a delivered file
}


def test_a_write_sweeps_stale_temporary_files_of_its_own_naming_only(tmp_path: Path) -> None:
    folder = transport(tmp_path)
    out = tmp_path / "out"
    hour_ago = time.time() - 3601
    for name in LEFT_BEHIND:
        (out / name).write_bytes(b"partial")
        os.utime(out / name, (hour_ago, hour_ago))
    fresh = ".customer-C5-v1.json.tmp-00000000000a"  # another worker's write in progress
    (out / fresh).write_bytes(b"growing")
    (out / ".old.json.tmp-0123456789ab").mkdir()  # a folder, even so named, is not a file of ours
    os.utime(out / ".old.json.tmp-0123456789ab", (hour_ago, hour_ago))

    assert write(folder, [CUSTOMERS[0]]) == ["customer-C1-v1.json"]

    kept = {name for name, removed in LEFT_BEHIND.items() if not removed}
    assert set(files(out)) == kept | {fresh, ".old.json.tmp-0123456789ab", "customer-C1-v1.json"}

    # Swept once per interval: a stale file appearing now waits for the next sweep.
    (out / ".customer-C7-v2.json.tmp-0123456789ab").write_bytes(b"partial")
    os.utime(out / ".customer-C7-v2.json.tmp-0123456789ab", (hour_ago, hour_ago))
    write(folder, [CUSTOMERS[1]])
    assert ".customer-C7-v2.json.tmp-0123456789ab" in files(out)
    assert "customer-C2-v1.json" in files(out)


@pytest.mark.parametrize("code", [errno.ENAMETOOLONG, errno.EILSEQ, errno.EFBIG])
def test_permanent_os_errors_are_fatal_the_others_retried(code: int) -> None:
    fs = LocalFileSystem()
    assert isinstance(fs.failure("cannot write", OSError(code, os.strerror(code))), FatalError)
    passing = fs.failure("cannot write", OSError(errno.EACCES, "Permission denied"))
    assert isinstance(passing, SourceUnavailable)
