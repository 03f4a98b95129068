"""The out-of-tree example connector (``examples/connector-jsonl``), installed as a package
into a fresh virtualenv of its own and run from there: through the conformance suite, through
``erpbridge check``, ``channels test`` and a real ``erpbridge sync``, and through the worker
that delivers an OUT flow to it. Nothing of it is importable from this test process: erpbridge
finds it by its entry points alone.

The virtualenv sees this one's packages (a ``.pth`` file), so the install needs no network:
``pip install --no-deps --no-build-isolation`` of a copy of the example.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "connector-jsonl"


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(python), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # rich tables at full width
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of the new virtualenv, the copy of the example it has installed)."""
    root = tmp_path_factory.mktemp("connector")
    copy = root / "connector-jsonl"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("*.egg-info", "build", "*.db"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root)
    # addsitedir, not a bare path: this virtualenv's erpbridge is an editable install, found
    # through a .pth file of its own that only a site directory's processing runs.
    ours = dict.fromkeys([sysconfig.get_path("purelib"), *site.getsitepackages()])
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in ours)
    Path(purelib.stdout.strip(), "outer.pth").write_text(lines)
    run(
        Path(sys.executable),
        *("-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"),
        *("--no-build-isolation", "--no-index", str(copy)),
        cwd=root,
    )
    return python, copy


def counts(table: str) -> tuple[str, int, int]:
    """(flow, read, created) of the one run in ``erpbridge sync``'s table."""
    found = re.search(r"│\s*\d+ │ (\S+)\s*│ \w+\s*│ \w+\s*│\s*(\d+) │\s*(\d+) │", table)
    assert found, table
    return found[1], int(found[2]), int(found[3])


def test_the_example_is_not_importable_here() -> None:
    """The checks below prove something only if this process cannot see the example."""
    with pytest.raises(ModuleNotFoundError):
        __import__("erpbridge_jsonl")


def test_the_installed_example_passes_the_conformance_suite(installed: tuple[Path, Path]) -> None:
    python, copy = installed
    done = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=copy)
    assert "13 passed" in done.stdout or "11 passed, 2 skipped" in done.stdout, done.stdout


def test_the_installed_example_syncs_and_delivers(installed: tuple[Path, Path]) -> None:
    python, copy = installed
    demo = copy / "demo"
    erpbridge = ("-m", "erpbridge")
    checked = run(python, *erpbridge, "check", cwd=demo)
    assert "ok" in checked.stdout.lower(), checked.stdout
    tested = run(python, *erpbridge, "channels", "test", "crm", cwd=demo)
    assert "channel crm (jsonl): ok" in tested.stdout, tested.stdout
    assert "flow customers-in: ok" in tested.stdout, tested.stdout
    synced = run(python, *erpbridge, "sync", "customers-in", cwd=demo)
    assert counts(synced.stdout) == ("customers-in", 3, 3), synced.stdout
    listed = run(python, *erpbridge, "records", "customer", cwd=demo)
    for name in ("Acme GmbH", "Globex AG", "Initech SA"):
        assert name in listed.stdout, listed.stdout
    # A second run resumes from the stored cursor: the one new line, not the three again.
    with (demo / "customers.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps({"id": "C4", "name": "Umbrella plc", "seq": 4}) + "\n")
    again = run(python, *erpbridge, "sync", "customers-in", cwd=demo)
    assert counts(again.stdout) == ("customers-in", 1, 1), again.stdout
    # The OUT flow: the worker delivers the hub's four customers to the other file.
    run(python, *erpbridge, "worker", "--once", cwd=demo)
    written = [json.loads(line) for line in (demo / "copy.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in written) == ["C1", "C2", "C3", "C4"], written
