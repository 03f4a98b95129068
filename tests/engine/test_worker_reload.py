"""``erpbridge worker`` reloads its configuration on SIGHUP like ``run`` and ``api`` (issue 14):
the next pass delivers with the new one; an invalid file is refused with its problems in the log
and the worker goes on with the one it has. Each reload is one ``config.reloaded`` log event
(issue 15).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hubprocess import wait_for

CONFIG = """
flows:
  - name: customers-in
    channel: inbox
    entity: customer
    direction: in
    source: {pattern: "*.json"}
    mapping: {code: code, name: name}
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    target: {format: json, name: "{key}-TAG.json"}
channels:
  inbox: {system: folder, options: {path: inbox}}
  erp: {system: folder, options: {path: erp}}
"""


BROKEN = "entity: custmer\n    direction: out"


def drop(root: Path, code: str) -> None:
    """A customer file read into the hub (with the good configuration, in sync.yaml)."""
    (root / "inbox" / f"{code}.json").write_text(f'[{{"code": "{code}", "name": "{code}"}}]')
    done = subprocess.run(
        [sys.executable, "-m", "erpbridge", "sync", "customers-in", "-c", "sync.yaml"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "ERPBRIDGE_DATABASE_URL": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_sighup_reloads_a_worker_and_a_broken_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path
    for folder in ("inbox", "erp"):
        (root / folder).mkdir()
    config = root / "erpbridge.yaml"
    config.write_text(CONFIG.replace("TAG", "first"))
    (root / "sync.yaml").write_text(CONFIG.replace("TAG", "first"))
    drop(root, "C-1")
    log = root / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "erpbridge", "worker", "--interval", "0.2",
             "--log-format", "json", "-c", str(config)],
            cwd=root, stdout=out, stderr=out,
            env={**os.environ, "ERPBRIDGE_DATABASE_URL": "", "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        wait_for(lambda: (root / "erp" / "C-1-first.json").exists(), "C-1 under the first name")

        config.write_text(CONFIG.replace("TAG", "second"))
        worker.send_signal(signal.SIGHUP)
        wait_for(lambda: "version 2 (reload by SIGHUP)" in log.read_text(), "the reload")
        drop(root, "C-2")
        wait_for(lambda: (root / "erp" / "C-2-second.json").exists(), "C-2 under the new name")

        broken = CONFIG.replace("TAG", "third").replace(
            "entity: customer\n    direction: out", BROKEN
        )
        config.write_text(broken)
        worker.send_signal(signal.SIGHUP)
        wait_for(lambda: "custmer" in log.read_text(), "the refusal naming the problem")
        drop(root, "C-3")
        wait_for(lambda: (root / "erp" / "C-3-second.json").exists(), "C-3 with the kept config")
        assert worker.poll() is None, log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    reloads = [e for e in events if e.get("event") == "config.reloaded"]
    assert [(e["outcome"], e.get("version")) for e in reloads] == [("ok", 2), ("refused", None)]
    assert "custmer" in reloads[1]["cause"]
