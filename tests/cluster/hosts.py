"""Driving scripts/cluster.sh from Python: the test of tests/cluster and bench/cluster.py.

The cluster's PostgreSQL runs on host ``db`` at 10.77.0.1:5432; the root namespace has no route
into the cluster, so statements are run by a Python started inside the db host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["CLUSTER", "DB", "cluster", "query"]

CLUSTER = Path(__file__).resolve().parent.parent.parent / "scripts" / "cluster.sh"
DB = "10.77.0.1"

_QUERY = (
    "import json, sys, psycopg\n"
    "c = psycopg.connect(host=sys.argv[1], user='postgres', dbname=sys.argv[2], autocommit=True)\n"
    "cur = c.execute(sys.argv[3])\n"
    "print(json.dumps(cur.fetchall() if cur.description else [], default=str))\n"
)


def cluster(*args: str) -> str:
    """``scripts/cluster.sh ARGS``; its output, or an error naming the command and its cause."""
    done = subprocess.run(
        ["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode:
        raise RuntimeError(f"cluster.sh {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def query(name: str, database: str, statement: str) -> list[list[object]]:
    """The rows of ``statement`` in ``database`` of cluster ``name``'s PostgreSQL."""
    done = subprocess.run(
        ["ip", "netns", "exec", f"{name}-db", sys.executable, "-c", _QUERY, DB, database,
         statement],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{database}: {statement[:80]}: {done.stderr.strip()}")
    rows: list[list[object]] = json.loads(done.stdout)
    return rows
