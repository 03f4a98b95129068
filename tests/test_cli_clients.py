"""``erpbridge clients add|list|revoke`` and ``secrets rotate``, as an operator uses them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from erpbridge.cli import app
from erpbridge.store import open_store
from erpbridge.store.apiclients import ClientRefused, verify_key
from erpbridge.store.secretbox import SecretBox, channel_credentials, store_credential

CONFIG = """
channels:
  shop: {system: platform}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ERPBRIDGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_add_list_revoke_with_an_audit_trail(project: Path) -> None:
    code, out = run(
        "clients",
        "add",
        "shop-app",
        "--scope",
        "events",
        "--scope",
        "read",
        "--channel",
        "shop",
        "--allow-ip",
        "10.1.0.0/16",
        "--expires-in-days",
        "30",
    )
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    assert key.startswith("ebk_")
    engine = open_store(f"sqlite:///{project / 'erpbridge.db'}")
    assert verify_key(engine, key).scopes == {"events", "read"}
    with sqlite3.connect(project / "erpbridge.db") as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and key.split("_", 2)[2] not in dump, "only the hash is stored"

    code, out = run("clients", "list")
    assert code == 0 and "shop-app" in out and "events, read" in out and "10.1.0.0/16" in out
    assert "active" in out and key not in out

    assert run("clients", "revoke", "shop-app")[0] == 0
    with pytest.raises(ClientRefused, match="revoked"):
        verify_key(engine, key)
    code, out = run("clients", "revoke", "shop-app")
    assert code == 1 and "no active client" in out
    with sqlite3.connect(project / "erpbridge.db") as db:
        actions = [r[0] for r in db.execute("SELECT action FROM admin_audit ORDER BY id")]
        actor = db.execute("SELECT actor FROM admin_audit").fetchone()[0]
    assert actions == ["client.add", "client.revoke"] and actor.startswith("cli:")
    engine.dispose()


def test_bad_input_is_refused(project: Path) -> None:
    code, out = run("clients", "add", "x", "--scope", "root")
    assert code == 2 and "unknown scope(s) root" in out
    code, out = run("clients", "add", "x", "--scope", "read", "--channel", "erp")
    assert code == 2 and "no channel named erp" in out
    for days in ("0", "-1", "nan", "inf", "40000"):
        # 0 used to register a client that never expires; "never" is leaving the option out.
        code, out = run("clients", "add", "x", "--scope", "read", "--expires-in-days", days)
        assert code == 2 and "--expires-in-days" in out and "above 0" in out, (days, out)
    code, out = run("clients", "add", "x", "--scope", "read", "--rate-limit", "lots")
    assert code == 2 and "--rate-limit" in out
    assert run("clients", "add", "x", "--scope", "read")[0] == 0
    code, out = run("clients", "add", "x", "--scope", "read")
    assert code == 2 and "exists already" in out


def test_rotate_secrets_to_a_new_key(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    engine = open_store(f"sqlite:///{project / 'erpbridge.db'}")
    with engine.begin() as conn:
        store_credential(conn, SecretBox([old.encode()]), "shop", "api_key", "s3cret-value")
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", f"{new},{old}")
    code, out = run("secrets", "rotate")
    assert code == 0 and "1 secret(s) re-encrypted" in out
    with engine.connect() as conn:
        assert channel_credentials(conn, SecretBox([new.encode()]), "shop") == {
            "api_key": "s3cret-value"
        }
    monkeypatch.setenv("ERPBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    code, out = run("secrets", "rotate")
    assert code == 1 and "cannot be decrypted" in out and "s3cret" not in out
    engine.dispose()


def test_list_shows_the_identities_mapped_to_a_client(project: Path) -> None:
    (project / "erpbridge.yaml").write_text(
        CONFIG
        + """
hub:
  api:
    identity_providers:
      - issuer: https://login.example
        jwks_url: https://login.example/keys
        identities: {app-7f3a: shop-app}
""",
        encoding="utf-8",
    )
    assert run("clients", "add", "shop-app", "--scope", "events")[0] == 0
    code, out = run("clients", "list")
    assert code == 0 and "app-7f3a @ https://login.example" in out


def test_a_client_name_holding_a_card_number_is_refused_and_not_stored(project: Path) -> None:
    """Every string the hub keeps passes the card-number scanner; a client's name was stored,
    audited and printed as given."""
    pan = "4929 1357 8024 6819"
    code, out = run("clients", "add", f"shop {pan}", "--scope", "read")
    assert code == 2, out
    assert "may not hold a card number" in out and pan not in out
    code, out = run("clients", "add", "shop", "--scope", "read")
    assert code == 0, out
    dump = b"".join(p.read_bytes() for p in project.glob("erpbridge.db*"))
    assert pan.replace(" ", "").encode() not in dump and pan.encode() not in dump
