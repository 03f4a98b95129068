"""The deployment files start what they say, the way they say it.

No container runtime works on this machine (the docker client is installed, no engine), so the
image and the compose file are not built or brought up here. Instead the test runs their
entrypoint commands outside a container, as processes on 127.0.0.1 with free ports: the image's
default command (`erpbridge run`) and its HEALTHCHECK command against it; the compose file's
`migrate`, `scheduler`, two `worker`s (procrastinate on PostgreSQL, as configured there) and two
`api`s against a real PostgreSQL hub, each healthy, each stopping cleanly on SIGTERM. The
systemd units are checked by ``systemd-analyze verify`` (with ExecStart pointing at this
checkout's erpbridge) and must draw no warning.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from ruamel.yaml import YAML

from hubprocess import free_port

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
ERPBRIDGE = str(Path(sys.executable).parent / "erpbridge")


def dockerfile() -> dict[str, str]:
    """The Dockerfile's last stage's instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stage = text.rsplit("\nFROM ", 1)[1]
    found: dict[str, str] = {}
    for line in stage.splitlines():
        if line and not line.startswith("#") and " " in line:
            word, rest = line.split(" ", 1)
            found[word] = rest.strip()
    return found


def hub_folder(tmp_path: Path) -> Path:
    """deploy/erpbridge.yaml with its data folder moved into ``tmp_path``."""
    config = (DEPLOY / "erpbridge.yaml").read_text().replace("/var/lib/erpbridge", str(tmp_path))
    (tmp_path / "erpbridge.yaml").write_text(config)
    (tmp_path / "inbox").mkdir()
    return tmp_path / "erpbridge.yaml"


def start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([ERPBRIDGE, *args], env=env, cwd=cwd, stdout=out, stderr=out)


def healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not healthy on {port} within 60 s:\n{log.read_text()}")


def stop_cleanly(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()


def test_the_image_runs_its_default_command_and_its_healthcheck(tmp_path: Path) -> None:
    image = dockerfile()
    assert image["USER"] not in {"root", "0"}
    assert json.loads(image["VOLUME"]) == ["/etc/erpbridge", "/var/lib/erpbridge"]
    entrypoint, command = json.loads(image["ENTRYPOINT"]), json.loads(image["CMD"])
    assert entrypoint[-1] == "erpbridge" and command[0] == "run"
    check = json.loads(image["HEALTHCHECK"].split(" CMD ", 1)[1])
    assert "/healthz" in check[-1]
    env_line = dict(re.findall(r"(\w+)=(\S+)", image["ENV"]))
    assert env_line["ERPBRIDGE_CONFIG"] == "/etc/erpbridge/erpbridge.yaml"

    config = hub_folder(tmp_path)
    port = free_port()
    args = [a.replace("0.0.0.0", "127.0.0.1").replace("8080", str(port)) for a in command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERPBRIDGE_")}
    env.update(ERPBRIDGE_CONFIG=str(config), PYTHONUNBUFFERED="1")
    log = tmp_path / "run.log"
    process = start(args, env, tmp_path, log)
    try:
        healthy(port, process, log)
        probe = [sys.executable, *check[1:-1], check[-1].replace("8080", str(port))]
        assert subprocess.run(probe, timeout=30, check=False).returncode == 0
    finally:
        stop_cleanly(process, log)


def test_the_compose_services_run_as_processes_against_postgresql(
    tmp_path: Path, pg_database: str
) -> None:
    compose = YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    ours = {name: s for name, s in services.items() if s.get("image") == "erpbridge:latest"}
    assert sorted(ours) == ["api-1", "api-2", "migrate", "scheduler", "worker-1", "worker-2"]
    proxy = services["proxy"]["networks"]["hub"]["ipv4_address"]
    config = hub_folder(tmp_path)
    trusted = YAML(typ="safe").load(config.read_text())["hub"]["api"]["trusted_proxies"]
    assert trusted == [f"{proxy}/32"], "the hub trusts the compose proxy and nobody else"

    env = {k: v for k, v in os.environ.items() if not k.startswith("ERPBRIDGE_")}
    for name, value in ours["scheduler"]["environment"].items():
        env[name] = str(value)
    env.update(
        ERPBRIDGE_CONFIG=str(config),
        ERPBRIDGE_DATABASE_URL=pg_database,
        ERPBRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
        PYTHONUNBUFFERED="1",
    )
    assert env["ERPBRIDGE_DISPATCHER"] == "procrastinate"

    migrate = subprocess.run(
        [ERPBRIDGE, *ours["migrate"]["command"]], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "upgraded" in migrate.stdout

    running: list[tuple[str, subprocess.Popen[bytes], Path, int | None]] = []
    try:
        for name in ("scheduler", "worker-1", "worker-2", "api-1", "api-2"):
            port = free_port() if "--port" in ours[name]["command"] else None
            args = [
                a.replace("0.0.0.0", "127.0.0.1").replace("8080", str(port))
                for a in ours[name]["command"]
            ]
            log = tmp_path / f"{name}.log"
            running.append((name, start(args, env, tmp_path, log), log, port))
        for _, process, log, port in running:
            if port is not None:
                healthy(port, process, log)
        time.sleep(2)  # the workers have connected to procrastinate by now
        for name, process, log, _ in running:
            assert process.poll() is None, f"{name} exited:\n{log.read_text()}"
    finally:
        for _, process, log, _ in reversed(running):
            stop_cleanly(process, log)


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd)"
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/erpbridge/bin/erpbridge", ERPBRIDGE)
        assert "ExecStart=" + ERPBRIDGE in text
        name = unit.name.replace("@.service", "@8081.service")  # an instance of a template
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    assert len(units) == 3
    done = subprocess.run(
        [analyze, "verify", *units], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
