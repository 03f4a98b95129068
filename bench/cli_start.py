"""Benchmark: how long the ``erpbridge`` command line takes to start and answer.

Each command runs ``--repeat`` times (default 7) as its own process, the way a user types it:
``erpbridge --help``, ``erpbridge --version``, ``erpbridge runs`` (a one-channel configuration
and a migrated SQLite hub store in a temporary folder, made before the clock runs) and
``erpbridge check``. For each: the fastest and the median wall time, and the median CPU time
(user + system, of the process and its children). On a shared machine the wall time moves with
other work; the CPU time is what the command itself costs, close to its wall time on an idle
core. The target of issue 13 is < 0.6 s for ``--help`` and ``runs``.

``--erpbridge PATH`` measures another installation's console script (e.g. main's, for a
before/after). Stderr gets the figures as they come; the last line on stdout is one JSON
object with them all (``help_wall_min_s``, ``help_cpu_s``, ``runs_wall_min_s`` …).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
channels:
  shop:
    system: folder
    options: {path: inbox}
flows:
  - name: products-in
    channel: shop
    entity: product
    direction: in
    mapping: {sku: Artikel, name: Bezeichnung}
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    command: list[str], cwd: Path, repeat: int, env: dict[str, str]
) -> dict[str, float] | None:
    """Wall and CPU seconds of ``command`` run ``repeat`` times (after one warm-up run);
    ``None`` when the command fails (``--version`` of an installation that has none)."""
    warm = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    if warm.returncode != 0:
        return None
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return {
        "wall_min_s": round(min(walls), 3),
        "wall_median_s": round(statistics.median(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--erpbridge", default=str(Path(sys.executable).with_name("erpbridge")), help="script"
    )
    args = parser.parse_args()
    # The commands run in a temporary folder: a relative path must not change its meaning.
    args.erpbridge = shutil.which(args.erpbridge) or args.erpbridge
    args.erpbridge = str(Path(args.erpbridge).resolve())
    figures: dict[str, object] = {"erpbridge": args.erpbridge, "repeat": args.repeat}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "inbox").mkdir()
        (root / "erpbridge.yaml").write_text(CONFIG, encoding="utf-8")
        # Bytecode is cached (in the temporary folder) as for any installed package, even
        # where PYTHONDONTWRITEBYTECODE is set; without it every start compiles erpbridge.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"COLUMNS": "120", "PYTHONPYCACHEPREFIX": str(root / "pycache")}
        subprocess.run([args.erpbridge, "runs"], cwd=root, env=env, capture_output=True, check=True)
        for name, command in (
            ("help", ["--help"]),
            ("version", ["--version"]),
            ("runs", ["runs"]),
            ("check", ["check"]),
        ):
            result = measure([args.erpbridge, *command], root, args.repeat, env)
            if result is None:
                print(f"erpbridge {' '.join(command)}: fails", file=sys.stderr)
                continue
            for key, value in result.items():
                figures[f"{name}_{key}"] = value
            print(
                f"erpbridge {' '.join(command)}: wall min {result['wall_min_s']:.3f} s, "
                f"median {result['wall_median_s']:.3f} s; CPU {result['cpu_s']:.3f} s",
                file=sys.stderr,
            )
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
