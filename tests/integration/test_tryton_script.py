"""``scripts/tryton.sh start`` right after ``stop``: the connections the stopped server left in
TIME_WAIT do not make the port "taken"; a program listening on it still does.

Runs the real script (its trytond virtualenv and cached database exist once the suite's own
Tryton was started, ``ERPBRIDGE_TEST_TRYTON``) on a free port and its own data folder."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from integration.servers import require_server

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _time_wait(port: int) -> None:
    """Leave a connection of ``port`` in TIME_WAIT: the listening side closes first, as a
    server that is stopped does."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()
    listener.close()
    client.recv(1)
    client.close()


@contextmanager
def _script_env(tmp_path: Path, port: int) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "ERPBRIDGE_TRYTON_PORT": str(port),
        "ERPBRIDGE_TRYTON_DIR": str(tmp_path / f"tryton-{port}"),
    }
    try:
        yield env
    finally:
        subprocess.run(
            ["bash", "scripts/tryton.sh", "stop"], cwd=ROOT, env=env, capture_output=True,
            timeout=60, check=False,
        )  # fmt: skip


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/tryton.sh", "start"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _tryton_installed() -> None:
    require_server("ERPBRIDGE_TEST_TRYTON", "Tryton (scripts/tryton.sh)")


def test_start_after_stop_is_not_refused_for_connections_in_time_wait(tmp_path: Path) -> None:
    port = _free_port()
    _time_wait(port)
    with socket.socket() as plain, pytest.raises(OSError):  # what the old check tripped over
        plain.bind(("127.0.0.1", port))
    with _script_env(tmp_path, port) as env:
        started = _start(env)
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().startswith("http://admin:")
        assert started.stdout.strip().endswith(f"@127.0.0.1:{port}/erpbridge")


def test_a_program_listening_on_the_port_still_makes_it_taken(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = int(other.getsockname()[1])
        with _script_env(tmp_path, port) as env:
            started = _start(env)
    assert started.returncode == 1
    assert f"port {port} is taken by another program" in started.stderr
