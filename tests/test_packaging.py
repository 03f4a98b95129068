"""The release artefacts install and run, and the tutorial works as written.

The sdist and the wheel built from it (as ``python -m build`` does) carry the licence and
everything the hub reads at run time (migrations, presets, the example configuration), and
``pip install`` of the wheel into a fresh virtual environment gives a working ``erpbridge``:
``init``, ``check`` and a real ``sync`` of a CSV into a new SQLite hub; docs/tutorial.md is run
block by block from ``pip install`` on.

Slow by nature (a build with an isolated environment, venvs and installs from PyPI or pip's
cache: a minute or two), so the build happens once for the module.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def test_the_sdist_and_the_wheel_carry_the_licence_and_the_package_data(dist: Path) -> None:
    (sdist,) = dist.glob("erpbridge-*.tar.gz")
    (wheel,) = dist.glob("erpbridge-*.whl")
    with tarfile.open(sdist) as archive:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in archive.getnames()}
    assert {"LICENSE", "pyproject.toml", "README.md"} <= names
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        headers = archive.read(metadata).decode().split("\n\n", 1)[0]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in headers.splitlines()
    assert "erpbridge/config/example.yaml" in names
    assert "erpbridge/store/migrations/env.py" in names
    assert any(n.startswith("erpbridge/store/migrations/versions/0001_") for n in names)
    assert any(n.startswith("erpbridge/systems/sap/") and n.endswith(".yaml") for n in names)


def test_the_wheel_installs_into_a_fresh_venv_and_syncs(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("erpbridge-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERPBRIDGE_")}
    env["COLUMNS"] = "200"  # rich tables in full

    def erpbridge(*args: str) -> str:
        done = subprocess.run(
            [str(bin_dir / "erpbridge"), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"erpbridge {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    assert erpbridge("--version").strip().endswith("0.1.0")
    erpbridge("init")
    assert erpbridge("check").startswith("ok erpbridge.yaml")
    inbox = work / "inbox"
    inbox.mkdir()
    export = inbox / "customers_2026-12-07.csv"
    export.write_text(
        "CustomerNo;Name1;Name2;Email;CreditLimit;Terms;Locked\n"
        "C-100;Muster;GmbH; Info@Muster.example ;1.500,50;Z30;N\n",
        encoding="utf-8",
    )
    old = time.time() - 60  # the example's folder channel waits for files 5 s old
    os.utime(export, (old, old))
    (row,) = [
        line for line in erpbridge("sync", "customers_in").splitlines() if "customers_in" in line
    ]
    assert [cell.strip() for cell in row.split("│")[2:9]] == [
        *("customers_in", "incremental", "succeeded", "1", "1", "0", "0"),
    ]
    shown = erpbridge("records", "customer", "--key", "C-100")
    assert '"name": "Muster GmbH"' in shown
    assert '"email": "info@muster.example"' in shown
    assert '"credit_limit": "1500.5"' in shown


def test_the_tutorial_runs_as_written(dist: Path, tmp_path: Path) -> None:
    """Every ``sh`` block of docs/tutorial.md, in order, in one shell, from an empty folder.

    Two substitutions, both for running here: ``pip install erpbridge`` installs the wheel just
    built (the package is not on PyPI from this machine), and the receiver's port 8099 becomes a
    free one (two test runs on one machine must not collide).
    """
    (wheel,) = dist.glob("erpbridge-*.whl")
    blocks = re.findall(r"^```sh\n(.*?)^```", TUTORIAL.read_text(), flags=re.S | re.M)
    script = "\n".join(blocks)
    assert script.count("pip install erpbridge\n") == 1 and "8099" in script
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = script.replace("pip install erpbridge\n", f"pip install -q {wheel}\n")
    script = script.replace("8099", str(port))
    (tmp_path / "tutorial.sh").write_text(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERPBRIDGE_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    env["COLUMNS"] = "200"
    done = subprocess.run(
        ["bash", "tutorial.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stdout + done.stderr
    assert "ok erpbridge.yaml: 3 channel(s), 3 flow(s)" in done.stdout

    work = tmp_path / "shop-sync"
    with sqlite3.connect(work / "erp.db") as db:
        rows = db.execute("SELECT * FROM customers ORDER BY code").fetchall()
    db.close()
    assert rows == [
        ("C-100", "Muster GmbH", "buchhaltung@muster.example", "1500.5"),
        ("C-101", "Beispiel AG", "einkauf@beispiel.example", "20000"),
    ]
    events = [line for line in (work / "received.jsonl").read_text().splitlines() if line]
    sent = [(e["key"], e["version"]) for e in map(json.loads, events)]
    assert sent == [("C-100", 1), ("C-101", 1), ("C-100", 2)]
    assert "required, but 'name' is empty" in done.stdout
    assert sorted(p.name for p in (work / "inbox" / "archive").iterdir()) == [
        "customers_2026-12-07.csv",
        "customers_2026-12-08.csv",
    ]
