"""A hub served the way a user starts it: ``erpbridge api`` or ``erpbridge run`` as a subprocess on
127.0.0.1 and a free port, with its own folder, configuration and secret key.

Defects that live in how the server is started (proxy headers, TLS, signals, file modes) only
show in the served process, not in the app object, so security and fault tests go through this.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

__all__ = ["ServedHub", "cli_ok", "free_port", "run_cli", "serve_hub", "wait_for"]


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``erpbridge ARGS -c ROOT/erpbridge.yaml`` as a process in ``root`` (SQLite store there)."""
    return subprocess.run(
        [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": "", "COLUMNS": "300"},
        check=False,
    )


def cli_ok(root: Path, *args: str) -> str:
    """:func:`run_cli` that must succeed; its standard output."""
    done = run_cli(root, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServedHub:
    """A running ``erpbridge`` server: its base URL, folder, process and environment."""

    url: str
    root: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    verify: Any = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "erpbridge.yaml"

    @property
    def database(self) -> Path:
        return self.root / "erpbridge.db"

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this hub (TLS verification as the hub was served)."""
        return httpx.Client(base_url=self.url, verify=kwargs.pop("verify", self.verify), **kwargs)

    def output(self) -> str:
        """What the process has printed so far (stdout and stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Send ``signum`` and wait for the exit code (killed after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@contextmanager
def serve_hub(
    root: Path,
    config: str,
    *,
    command: str = "api",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    scheme: str = "http",
    verify: Any = True,
    ready_timeout_s: float = 40,
    port: int | None = None,
) -> Iterator[ServedHub]:
    """Write ``config`` to ``root/erpbridge.yaml``, serve it with ``erpbridge <command>`` on a free
    port, wait until ``/healthz`` answers, yield the :class:`ServedHub`, stop it with SIGTERM.

    The environment gets its own ``ERPBRIDGE_SECRET_KEY`` unless ``env`` brings one; an inherited
    ``ERPBRIDGE_DATABASE_URL`` is dropped so that the hub's store is ``root/erpbridge.db``.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "erpbridge.yaml").write_text(config, encoding="utf-8")
    environment = {**os.environ, "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode()}
    environment.pop("ERPBRIDGE_DATABASE_URL", None)
    environment.update(env or {})
    port = port or free_port()  # a caller's own when the configuration must name it
    log = root / f"{command}-{port}.log"
    argv = [sys.executable, "-m", "erpbridge", command, "-c", str(root / "erpbridge.yaml")]
    argv += ["--port", str(port), *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=environment, cwd=root, stdout=sink, stderr=subprocess.STDOUT
        )
    hub = ServedHub(f"{scheme}://127.0.0.1:{port}", root, process, environment, log, verify)
    try:
        _wait_ready(hub, ready_timeout_s)
        yield hub
    finally:
        hub.stop()


def _wait_ready(hub: ServedHub, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(f"{hub.url}/healthz", verify=hub.verify, timeout=2)
            return
        except httpx.HTTPError:
            if hub.process.poll() is not None or time.monotonic() > deadline:
                hub.stop(signal.SIGKILL)
                raise RuntimeError(f"erpbridge did not start:\n{hub.output()}") from None
            time.sleep(0.2)
