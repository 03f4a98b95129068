"""``erpbridge api`` over HTTPS, as an operator starts it: a certificate made at test time, HSTS,
and a client certificate (mutual TLS) as the third way to authenticate."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from integration.pki import Pki, make_pki

CONFIG = """
channels:
  shop:
    system: platform
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping:
      code: {from: id, required: true}
      name: {from: name, required: true}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pki, str]]:
    root = tmp_path_factory.mktemp("tls")
    pki = make_pki(root)
    (root / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    env = {**os.environ, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    env.pop("ERPBRIDGE_DATABASE_URL", None)
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    key = create_client(engine, "reader", {"read"})[1]
    create_client(engine, "shop", {"events"})
    engine.dispose()
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "erpbridge",
            "api",
            "-c",
            str(root / "erpbridge.yaml"),
            "--port",
            str(port),
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.server_key),
            "--tls-client-ca",
            str(pki.ca),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=pki.ca))
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output, _ = process.communicate()
                output = output.decode() if output else ""
                pytest.fail(f"erpbridge api did not start: {output}")
            time.sleep(0.2)
    yield url, pki, key
    process.terminate()
    process.wait(15)
    if process.stdout is not None:
        process.stdout.close()


def _tls(pki: Pki, client: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca)
    if client:
        cert, key = pki.client(client)
        context.load_cert_chain(cert, key)
    return context


def test_https_with_hsts_and_an_api_key(served: tuple[str, Pki, str]) -> None:
    url, pki, key = served
    answer = httpx.get(f"{url}/api/v1/flows", headers={"X-API-Key": key}, verify=_tls(pki))
    assert answer.status_code == 200
    assert answer.json()[0]["name"] == "customers-in"
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_plain_http_to_the_tls_port_fails(served: tuple[str, Pki, str]) -> None:
    url, _, key = served
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https", "http") + "/api/v1/flows", headers={"X-API-Key": key})


def test_client_certificate_authenticates_by_common_name(served: tuple[str, Pki, str]) -> None:
    url, pki, _ = served
    with httpx.Client(verify=_tls(pki, "reader")) as http:
        assert http.get(f"{url}/api/v1/flows").status_code == 200
        # The certificate's client holds 'read' only.
        assert http.post(f"{url}/api/v1/flows/customers-in/disable").status_code == 403
    with httpx.Client(verify=_tls(pki, "shop")) as http:
        event = http.post(f"{url}/api/v1/events/customers-in", json={"id": "C-1", "name": "x"})
        assert event.status_code == 202


def test_certificate_of_an_unknown_client_is_refused(served: tuple[str, Pki, str]) -> None:
    url, pki, _ = served
    with httpx.Client(verify=_tls(pki, "stranger")) as http:
        answer = http.get(f"{url}/api/v1/flows")
    assert answer.status_code == 401
    assert "no API client named 'stranger'" in answer.json()["error"]["message"]


def test_no_certificate_and_no_key_is_401(served: tuple[str, Pki, str]) -> None:
    url, pki, _ = served
    assert httpx.get(f"{url}/api/v1/flows", verify=_tls(pki)).status_code == 401


def test_missing_tls_files_are_refused_before_start(tmp_path: Path) -> None:
    (tmp_path / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "erpbridge",
            "api",
            "-c",
            str(tmp_path / "erpbridge.yaml"),
            "--tls-cert",
            str(tmp_path / "missing.pem"),
            "--tls-key",
            str(tmp_path / "missing.key"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()},
    )
    assert result.returncode == 2
    assert "missing.pem does not exist" in result.stderr
