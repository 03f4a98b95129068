"""The sftp transport against a real OpenSSH sshd (``scripts/sshd.sh``, internal-sftp).

IN flows run through the real engine (``FlowRunner``) into a SQLite hub, OUT flows through the
real ``Worker``. Files are put on the server the way a partner does (a paramiko SFTP upload
with its own login); what landed is checked on the server's own file system (the sshd's data
folder). Each test works in its own folder below the session's start folder.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import paramiko
import psutil
import pytest
import yaml
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.diagnose import check_channel
from erpbridge.engine.worker import Worker
from erpbridge.errors import FatalError, SourceUnavailable
from erpbridge.store.tables import deliveries, records, rejected
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.files.options import FolderStreamOptions, FolderTargetOptions
from erpbridge.transports.files.sftp.filesystem import SftpFileSystem
from erpbridge.transports.files.sftp.transport import SftpChannelOptions, SftpTransport
from integration.sftp_server import Sftp, sftp_server

AN_HOUR_AGO = 3600


@pytest.fixture(scope="module")
def server() -> Sftp:
    return sftp_server()


@pytest.fixture
def box(server: Sftp) -> Iterator[str]:
    """A fresh folder of the SFTP user with ``inbox`` and ``erp`` in it; its relative path."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    for folder in (name, f"{name}/inbox", f"{name}/erp"):
        (server.files / folder).mkdir()
        shutil.chown(server.files / folder, server.user)
    yield name
    shutil.rmtree(server.files / name)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


@contextmanager
def partner(server: Sftp) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session of the partner who drops files (password login)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(server.known_hosts))
    try:
        client.connect(
            server.host,
            server.port,
            server.user,
            password=server.password,
            allow_agent=False,
            look_for_keys=False,
        )
        yield client.open_sftp()
    finally:
        client.close()


def upload(server: Sftp, path: str, content: str | bytes, age: float = AN_HOUR_AGO) -> None:
    """Upload ``content`` to ``path`` and date it ``age`` seconds back."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with partner(server) as sftp:
        with sftp.open(path, "wb") as fh:
            fh.set_pipelined(True)
            fh.write(data)
        if age:
            then = time.time() - age
            sftp.utime(path, (then, then))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def write_config(
    tmp_path: Path,
    server: Sftp,
    box: str,
    flows: list[dict[str, Any]],
    **options: Any,
) -> Path:
    """An erpbridge YAML file with the channel ``partner`` (key login, inbox ``<box>/inbox``)."""
    channel_options = {
        "host": server.host,
        "port": server.port,
        "username": server.user,
        "path": f"{box}/inbox",
        "known_hosts": str(server.known_hosts),
        "private_key": str(server.key),
        **options,
    }
    config = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {"partner": {"system": "sftp", "options": channel_options}},
        "flows": flows,
    }
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


CUSTOMERS_IN = {
    "name": "customers-in",
    "channel": "partner",
    "entity": "customer",
    "direction": "in",
    "source": {"pattern": "customers*.csv", "delimiter": ";"},
    "key": "KdNr",
    "mapping": {"code": "KdNr", "name": "Name", "credit_limit": {"from": "Limit"}},
}
PRODUCTS_XML_IN = {
    "name": "products-xml-in",
    "channel": "partner",
    "entity": "product",
    "direction": "in",
    "source": {"pattern": "products*.xml", "record_tag": "Artikel"},
    "key": "@nr",
    "mapping": {"sku": "@nr", "name": "Bezeichnung", "weight": "Gewicht"},
}
PRODUCTS_JSON_IN = {
    "name": "products-json-in",
    "channel": "partner",
    "entity": "product",
    "direction": "in",
    "source": {"pattern": "products*.json", "records_path": "data.items"},
    "key": "sku",
    "mapping": {"sku": "sku", "name": "title"},
}

CUSTOMERS_CSV = "KdNr;Name;Limit\nC1;Anna GmbH;1000.50\nC2;Bob AG;\nC3;;12\n"
PRODUCTS_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Artikelliste xmlns="urn:example:pim">'
    '<Artikel nr="P-1"><Bezeichnung>Schraube M6</Bezeichnung><Gewicht>0.01</Gewicht></Artikel>'
    '<Artikel nr="P-2"><Bezeichnung>Mutter M6 – verzinkt</Bezeichnung></Artikel>'
    "</Artikelliste>"
)
PRODUCTS_JSON = orjson.dumps(
    {"data": {"items": [{"sku": "P-3", "title": "Scheibe"}, {"sku": "P-4", "title": "Dübel"}]}}
).decode()


def payloads(engine: Engine, entity: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(records.c.key, records.c.payload).where(records.c.entity == entity)
        )
        return {key: orjson.loads(payload) for key, payload in rows}


# -- IN and OUT through the engine -------------------------------------------------------------


def test_csv_xml_and_json_flow_in_and_are_archived_on_the_server(
    tmp_path: Path, server: Sftp, box: str, hub: Engine
) -> None:
    upload(server, f"{box}/inbox/customers-1.csv", CUSTOMERS_CSV)
    upload(server, f"{box}/inbox/products-1.xml", PRODUCTS_XML)
    upload(server, f"{box}/inbox/products-2.json", PRODUCTS_JSON)
    path = write_config(tmp_path, server, box, [CUSTOMERS_IN, PRODUCTS_XML_IN, PRODUCTS_JSON_IN])
    runner = FlowRunner(load_config(path), hub)

    results = {name: runner.run(name) for name in ("customers-in", "products-xml-in")}
    results["products-json-in"] = runner.run("products-json-in")

    summary = {n: (r.status, r.read, r.created, r.rejected) for n, r in results.items()}
    assert summary == {
        "customers-in": ("succeeded", 3, 2, 1),  # C3 has no name
        "products-xml-in": ("succeeded", 2, 2, 0),
        "products-json-in": ("succeeded", 2, 2, 0),
    }
    assert payloads(hub, "customer") == {
        "C1": {"code": "C1", "name": "Anna GmbH", "credit_limit": "1000.5", "locked": False},
        "C2": {"code": "C2", "name": "Bob AG", "locked": False},
    }
    products = payloads(hub, "product")
    assert products["P-1"]["name"] == "Schraube M6"
    assert products["P-1"]["weight"] == "0.01"
    assert products["P-2"]["name"] == "Mutter M6 – verzinkt"
    assert products["P-4"]["name"] == "Dübel"
    with hub.connect() as conn:
        bad = conn.execute(select(rejected.c.position, rejected.c.field_path)).one()
    assert tuple(bad) == ("customers-1.csv:4", "name")
    inbox = server.files / box / "inbox"
    assert names(inbox) == ["archive"]
    assert names(inbox / "archive") == ["customers-1.csv", "products-1.xml", "products-2.json"]
    assert (inbox / "archive" / "customers-1.csv").read_text(encoding="utf-8") == CUSTOMERS_CSV


def test_records_flow_out_to_the_server_through_the_worker(
    tmp_path: Path, server: Sftp, box: str, hub: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_SFTP_PASSWORD", server.password)
    flows = [
        CUSTOMERS_IN,
        {
            "name": "customers-to-erp",
            "channel": "erp",
            "entity": "customer",
            "direction": "out",
            "target": {"format": "json", "subfolder": "customers"},
            "mapping": {
                "KUNNR": "code",
                "NAME1": "name",
                "KLIMK": {
                    "from": "credit_limit",
                    "transforms": [{"format_decimal": 2}],
                    "default": "0.00",
                },
            },
        },
        {
            "name": "customers-batch-to-erp",
            "channel": "erp",
            "entity": "customer",
            "direction": "out",
            "target": {"format": "csv", "file_per": "batch", "delimiter": ";"},
            "mapping": {"KUNNR": "code", "NAME1": "name"},
        },
    ]
    path = write_config(tmp_path, server, box, flows)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A second channel on the same server: password login, from the environment.
    erp = {**config["channels"]["partner"]["options"], "path": f"{box}/erp"}
    del erp["private_key"]
    config["channels"]["erp"] = {
        "system": "sftp",
        "options": erp,
        "credentials": {"password": "${ERP_SFTP_PASSWORD}"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    upload(server, f"{box}/inbox/customers-1.csv", CUSTOMERS_CSV)
    loaded = load_config(path)
    assert FlowRunner(loaded, hub).run("customers-in").created == 2

    worker = Worker(loaded, hub)
    try:
        stats = worker.run_once()
    finally:
        worker.close()

    assert (stats.delivered, stats.dead, stats.retried) == (4, 0, 0)
    erp_folder = server.files / box / "erp"
    assert names(erp_folder / "customers") == ["customer-C1-v1.json", "customer-C2-v1.json"]
    written = orjson.loads((erp_folder / "customers" / "customer-C1-v1.json").read_bytes())
    assert written == {"KUNNR": "C1", "NAME1": "Anna GmbH", "KLIMK": "1000.50"}
    [batch_file] = [n for n in names(erp_folder) if n.endswith(".csv")]
    assert batch_file.startswith("customer-")
    lines = (erp_folder / batch_file).read_text(encoding="utf-8").splitlines()
    assert lines == ["KUNNR;NAME1", "C1;Anna GmbH", "C2;Bob AG"]
    # Nothing half-written or temporary is left behind.
    assert not [p for p in erp_folder.rglob("*") if p.name.startswith(".")]
    with hub.connect() as conn:
        delivered = conn.execute(
            select(
                deliveries.c.flow, deliveries.c.key, deliveries.c.state, deliveries.c.external_id
            ).order_by(deliveries.c.flow, deliveries.c.key)
        ).all()
    assert [tuple(row) for row in delivered] == [
        ("customers-batch-to-erp", "C1", "delivered", batch_file),
        ("customers-batch-to-erp", "C2", "delivered", batch_file),
        ("customers-to-erp", "C1", "delivered", "customers/customer-C1-v1.json"),
        ("customers-to-erp", "C2", "delivered", "customers/customer-C2-v1.json"),
    ]


def test_writing_a_version_again_replaces_the_file_in_one_step(server: Sftp, box: str) -> None:
    transport = SftpTransport("erp", options(server, f"{box}/erp"), Path("."))
    try:
        target = FolderTargetOptions(format="json")
        first = transport.write(target, [outgoing({"v": 1})])
        again = transport.write(target, [outgoing({"v": 2})])
    finally:
        transport.close()
    assert first == again == ["customer-K1-v1.json"]
    assert names(server.files / box / "erp") == ["customer-K1-v1.json"]
    assert orjson.loads((server.files / box / "erp" / "customer-K1-v1.json").read_bytes()) == {
        "v": 2
    }


def test_a_write_sweeps_stale_temporary_files_of_its_own_naming_only(
    server: Sftp, box: str
) -> None:
    """Uploads killed before their rename leave hidden files; the next transport's first write
    removes those of the hub's naming once they are an hour old, and nothing else."""
    left = {
        ".customer-K7-v1.json.0123456789ab.part": True,  # an upload killed mid-way
        ".customer-K8-v1.json.tmp-0123456789ab": True,  # a local-style write, same folder
        ".erpbridge-health-0123456789ab.tmp": True,  # a health probe killed mid-way
        ".customer-K9-v1.json.0123456789ab.part.bak": False,
        ".partner-upload.part": False,  # a partner's upload in progress: not ours
        "orders.filepart": False,
        "customer-K6-v1.json": False,
    }
    for name in left:
        upload(server, f"{box}/erp/{name}", "partial")
    fresh = ".customer-K5-v1.json.00000000000a.part"
    upload(server, f"{box}/erp/{fresh}", "growing", age=0)  # another worker's, in progress
    transport = SftpTransport("erp", options(server, f"{box}/erp"), Path("."))
    try:
        assert transport.write(FolderTargetOptions(format="json"), [outgoing({"v": 1})]) == [
            "customer-K1-v1.json"
        ]
    finally:
        transport.close()
    kept = {name for name, removed in left.items() if not removed}
    assert set(names(server.files / box / "erp")) == kept | {fresh, "customer-K1-v1.json"}


def test_a_file_name_too_long_is_permanent_and_leaves_nothing_on_the_server(
    server: Sftp, box: str
) -> None:
    # OpenSSH answers ENAMETOOLONG with a bare "Failure", which reads as a passing problem:
    # the transport decides on the name's length before it asks, so the delivery goes dead.
    transport = SftpTransport("erp", options(server, f"{box}/erp"), Path("."))
    long_key = OutgoingRecord(1, "customer", "K" * 300, 1, "customers-to-erp:1:1", {"v": 1})
    try:
        with pytest.raises(FatalError, match=r"is 317 bytes long, file systems take at most 255"):
            transport.write(FolderTargetOptions(format="json"), [long_key])
    finally:
        transport.close()
    assert names(server.files / box / "erp") == []


# -- bad input ---------------------------------------------------------------------------------


def test_wrong_password_fails_the_run_and_reads_nothing(
    tmp_path: Path, server: Sftp, box: str, hub: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNER_PASSWORD", "not-the-password")
    path = write_config(tmp_path, server, box, [CUSTOMERS_IN])
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    del config["channels"]["partner"]["options"]["private_key"]
    config["channels"]["partner"]["credentials"] = {"password": "${PARTNER_PASSWORD}"}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    upload(server, f"{box}/inbox/customers-1.csv", CUSTOMERS_CSV)
    loaded = load_config(path)

    result = FlowRunner(loaded, hub).run("customers-in")
    report = check_channel(loaded, "partner")

    assert result.status == "failed"
    assert result.error is not None
    assert "channel 'partner'" in result.error
    assert f"login refused for '{server.user}' with the password" in result.error
    assert "not-the-password" not in result.error
    assert (report.health.ok, report.health.category) == (False, "auth")
    assert names(server.files / box / "inbox") == ["customers-1.csv"]


def test_unknown_host_key_is_refused_with_its_fingerprint(
    tmp_path: Path, server: Sftp, box: str, hub: Engine
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("", encoding="utf-8")
    upload(server, f"{box}/inbox/customers-1.csv", CUSTOMERS_CSV)
    path = write_config(tmp_path, server, box, [CUSTOMERS_IN], known_hosts=str(empty))
    loaded = load_config(path)

    result = FlowRunner(loaded, hub).run("customers-in")
    report = check_channel(loaded, "partner")

    assert result.status == "failed"
    assert result.error is not None
    key = server.host_key()
    assert f"host key ssh-ed25519 {key.fingerprint} of [{server.host}]:{server.port}" in (
        result.error
    )
    assert f"is not in {empty}" in result.error
    assert (report.health.ok, report.health.category) == (False, "tls")
    assert names(server.files / box / "inbox") == ["customers-1.csv"]
    assert empty.read_text(encoding="utf-8") == ""  # nothing trusted behind our back


def test_accept_new_trusts_on_first_use_but_never_a_changed_key(
    tmp_path: Path, server: Sftp, box: str
) -> None:
    known = tmp_path / "ssh" / "known_hosts"  # missing: created on first use
    first = SftpTransport(
        "partner",
        options(server, box, known_hosts=str(known), host_key_policy="accept_new"),
        tmp_path,
    )
    try:
        assert first.health().ok
    finally:
        first.close()
    line = known.read_text(encoding="utf-8")
    assert line.startswith(f"[{server.host}]:{server.port} ssh-ed25519 ")
    assert (
        SftpTransport("partner", options(server, box, known_hosts=str(known)), tmp_path).health().ok
    )

    impostor = paramiko.Ed25519Key.from_private_key_file(str(server.key))  # any other key
    known.write_text(
        f"[{server.host}]:{server.port} ssh-ed25519 {impostor.get_base64()}\n", encoding="utf-8"
    )
    changed = SftpTransport(
        "partner",
        options(server, box, known_hosts=str(known), host_key_policy="accept_new"),
        tmp_path,
    )
    health = changed.health()
    assert (health.ok, health.category) == (False, "tls")
    assert "does not match" in health.detail
    assert impostor.fingerprint in health.detail
    with pytest.raises(FatalError, match="someone is in between"):
        list(changed.read(FolderStreamOptions(), None, 10, frozenset()))


def test_unknown_host_name_is_a_dns_failure(tmp_path: Path, server: Sftp, box: str) -> None:
    transport = SftpTransport(
        "partner", options(server, box, host="sftp.erpbridge.invalid", connect_timeout=5), tmp_path
    )
    health = transport.health()
    assert (health.ok, health.category) == (False, "dns")
    with pytest.raises(SourceUnavailable, match=r"cannot resolve host 'sftp\.erpbridge\.invalid'"):
        list(transport.read(FolderStreamOptions(), None, 10, frozenset()))


def test_missing_or_forbidden_folders(tmp_path: Path, server: Sftp, box: str) -> None:
    missing = SftpTransport("partner", options(server, f"{box}/nowhere"), tmp_path)
    health = missing.health()
    assert (health.ok, health.category) == (False, "schema")
    assert f"/~/{box}/nowhere" in health.detail
    with pytest.raises(FatalError, match="cannot read inbox folder"):
        list(missing.read(FolderStreamOptions(), None, 10, frozenset()))
    with pytest.raises(FatalError, match="does not exist"):
        missing.write(FolderTargetOptions(), [outgoing({"a": 1})])
    missing.close()

    (server.files / box / "inbox" / "archive").mkdir(mode=0o555)
    locked = SftpTransport("partner", options(server, f"{box}/inbox"), tmp_path)
    health = locked.health()
    locked.close()
    assert (health.ok, health.category) == (False, "forbidden")
    assert f"/~/{box}/inbox/archive cannot be created or written" in health.detail


def test_malformed_csv_and_xml_go_to_error_with_a_reason(
    tmp_path: Path, server: Sftp, box: str, hub: Engine
) -> None:
    upload(server, f"{box}/inbox/customers-1.csv", "Nummer;Name\n1;x\n")  # wrong header
    upload(server, f"{box}/inbox/customers-2.csv", CUSTOMERS_CSV)
    upload(server, f"{box}/inbox/products-1.xml", PRODUCTS_XML[:-20])  # cut off
    upload(
        server,
        f"{box}/inbox/products-2.xml",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "a">]><r><Artikel nr="X">&a;</Artikel></r>',
    )
    upload(server, f"{box}/inbox/customers-3.csv", b"KdNr;Name\nC9;M\xfcller\n")  # not UTF-8
    deep = "<r><Artikel nr='D'>" + "<x>" * 5000 + "</x>" * 5000 + "</Artikel></r>"
    upload(server, f"{box}/inbox/products-3.xml", deep)  # nested past the depth limit
    path = write_config(tmp_path, server, box, [CUSTOMERS_IN, PRODUCTS_XML_IN])
    runner = FlowRunner(load_config(path), hub)

    customers = runner.run("customers-in")
    products = runner.run("products-xml-in")

    assert (customers.status, customers.created) == ("succeeded", 2)
    # The truncated file's records before the break are kept; the file still goes to error/.
    assert (products.status, products.created) == ("succeeded", 1)
    error = server.files / box / "inbox" / "error"
    broken = [
        "customers-1.csv",
        "customers-3.csv",
        "products-1.xml",
        "products-2.xml",
        "products-3.xml",
    ]
    assert names(error) == sorted([*broken, *(f"{n}.reason.txt" for n in broken)])
    reasons = {n: (error / f"{n}.reason.txt").read_text(encoding="utf-8") for n in broken}
    assert "header lacks column(s) 'KdNr'" in reasons["customers-1.csv"]
    assert "cannot decode as utf-8" in reasons["customers-3.csv"]
    assert "XML syntax error" in reasons["products-1.xml"]
    assert "DOCTYPE/entity declarations are not accepted" in reasons["products-2.xml"]
    assert "XML nested more than 100 elements deep" in reasons["products-3.xml"]
    assert all("channel 'partner'" in text for text in reasons.values())
    assert names(server.files / box / "inbox" / "archive") == ["customers-2.csv"]
    with hub.connect() as conn:
        positions = set(conn.execute(select(rejected.c.position)).scalars())
    assert set(broken) <= positions


def test_a_file_still_being_written_is_left_for_a_later_run(
    tmp_path: Path, server: Sftp, box: str, hub: Engine
) -> None:
    path = write_config(tmp_path, server, box, [CUSTOMERS_IN], min_age_seconds=60)
    runner = FlowRunner(load_config(path), hub)
    upload(server, f"{box}/inbox/customers-1.csv", CUSTOMERS_CSV, age=0)  # just written

    early = runner.run("customers-in")
    assert (early.status, early.read) == ("succeeded", 0)
    assert names(server.files / box / "inbox") == ["customers-1.csv"]

    then = time.time() - 120  # the writer finished two minutes ago
    with partner(server) as sftp:
        sftp.utime(f"{box}/inbox/customers-1.csv", (then, then))
    later = runner.run("customers-in")
    assert (later.read, later.created) == (3, 2)
    assert names(server.files / box / "inbox" / "archive") == ["customers-1.csv"]


def test_a_file_that_grows_during_the_stable_check_is_left_alone(
    tmp_path: Path, server: Sftp, box: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(server, f"{box}/inbox/customers-1.csv", CUSTOMERS_CSV)
    upload(server, f"{box}/inbox/customers-2.csv", "KdNr;Name;Limit\nC7;Growing;1\n")
    transport = SftpTransport(
        "partner", options(server, f"{box}/inbox", stable_seconds=0.5), tmp_path
    )
    waits: list[float] = []
    sleep = time.sleep

    def writer_busy_meanwhile(seconds: float) -> None:
        # The partner's upload goes on while the transport waits between its two listings.
        waits.append(seconds)
        with partner(server) as sftp, sftp.open(f"{box}/inbox/customers-2.csv", "a") as fh:
            fh.write(b"C8;Still coming;2\n")
        sleep(seconds)

    monkeypatch.setattr("erpbridge.transports.files.drop.time.sleep", writer_busy_meanwhile)
    try:
        batches = list(transport.read(FolderStreamOptions(delimiter=";"), None, 10, frozenset()))
        for batch in batches:
            batch.acknowledge()
    finally:
        transport.close()
    assert waits == [0.5]
    assert [r.position for b in batches for r in b.records] == [
        "customers-1.csv:2",
        "customers-1.csv:3",
        "customers-1.csv:4",
    ]
    assert names(server.files / box / "inbox") == ["archive", "customers-2.csv"]


def test_an_oversized_file_is_refused_by_its_size_without_download(
    tmp_path: Path, server: Sftp, box: str, hub: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = "KdNr;Name;Limit\n" + "".join(f"C{i};Name {i};{i}\n" for i in range(20_000))
    upload(server, f"{box}/inbox/customers-1.csv", big)
    path = write_config(tmp_path, server, box, [CUSTOMERS_IN], max_file_mb=0.1)

    def no_download(self: SftpFileSystem, file: PurePosixPath) -> None:
        raise AssertionError(f"{file} was opened")

    monkeypatch.setattr(SftpFileSystem, "open_read", no_download)
    result = FlowRunner(load_config(path), hub).run("customers-in")

    assert (result.status, result.read, result.rejected) == ("succeeded", 0, 1)
    reason = (server.files / box / "inbox" / "error" / "customers-1.csv.reason.txt").read_text(
        encoding="utf-8"
    )
    size = (server.files / box / "inbox" / "error" / "customers-1.csv").stat().st_size
    assert f"file is oversized: {size / 1048576:.2f} MB, max_file_mb is 0.1" in reason


# -- connections -------------------------------------------------------------------------------


def test_a_dropped_connection_is_made_again_and_a_download_resumes(
    tmp_path: Path, server: Sftp, box: str, caplog: pytest.LogCaptureFixture
) -> None:
    rows = 60_000  # about 1.5 MB: several read-ahead windows
    upload(
        server,
        f"{box}/inbox/customers-1.csv",
        "KdNr;Name;Limit\n" + "".join(f"C{i};Name {i};{i}\n" for i in range(rows)),
    )
    transport = SftpTransport("partner", options(server, f"{box}/inbox"), tmp_path)
    try:
        batches = transport.read(FolderStreamOptions(delimiter=";"), None, 1000, frozenset())
        seen = [r.data["KdNr"] for r in next(batches).records]
        drop_sessions(server)
        for batch in batches:
            seen += [r.data["KdNr"] for r in batch.records]
            batch.acknowledge()
        drop_sessions(server)
        written = transport.write(FolderTargetOptions(), [outgoing({"after": "the drop"})])
    finally:
        transport.close()
    assert seen == [f"C{i}" for i in range(rows)]  # each row once, in order
    assert "connection lost while reading" in caplog.text
    assert names(server.files / box / "inbox" / "archive") == ["customers-1.csv"]
    assert (server.files / box / "inbox" / written[0]).exists()


def drop_sessions(server: Sftp) -> None:
    """Kill the sshd processes serving connections (children of our sshd listener only)."""
    listener = psutil.Process(int((server.data / "sshd.pid").read_text(encoding="utf-8")))
    sessions = listener.children(recursive=True)
    assert sessions, "no SFTP session to drop"
    for process in sessions:
        process.kill()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in sessions) and time.monotonic() < deadline:
        time.sleep(0.01)


def alive(process: psutil.Process) -> bool:
    """Still running: a zombie has closed its sockets already, which is all that counts."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- helpers -----------------------------------------------------------------------------------


def options(server: Sftp, path: str, **extra: Any) -> SftpChannelOptions:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "username": server.user,
        "path": path,
        "known_hosts": str(server.known_hosts),
        "private_key": str(server.key),
        "min_age_seconds": 0,
        **extra,
    }
    return SftpChannelOptions(**values)


def outgoing(data: dict[str, Any]) -> OutgoingRecord:
    return OutgoingRecord(1, "customer", "K1", 1, "customers-to-erp:1:1", data)
