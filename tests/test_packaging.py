"""The release artefacts install and run: the sdist and the wheel built from it (as ``python -m
build`` does) carry the licence and everything the hub reads at run time (migrations, presets,
the example configuration), and ``pip install`` of the wheel into a fresh virtual environment gives
a working ``erpbridge``: ``init``, ``check`` and a real ``sync`` of a CSV into a new SQLite hub.

Slow by nature (a build with an isolated environment, a venv and an install from PyPI or pip's
cache: about a minute), so the build happens once for the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


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
