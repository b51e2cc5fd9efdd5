"""The session log survives a SIGKILL of the whole runtime process."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from twin.log import LogReader
from twin.messages import Metric

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]


def committed_ticks(log: Path) -> int:
    """What the recorder has acknowledged so far: rows committed to the log."""
    db = sqlite3.connect(log, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM messages WHERE source='ticker'").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        db.close()


def test_sigkill_of_the_runtime_leaves_a_complete_readable_log(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    config["session"]["log_dir"] = str(tmp_path)
    config["actors"] = {name: config["actors"][name] for name in ("recorder", "mission")}
    config["actors"]["ticker"] = {
        "class": "twin.testing.Ticker", "settings": {"interval_s": 0.001, "count": 0}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    runtime = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "run", str(ROOT / "missions" / "route_clearance.yaml"),
         "--config", str(config_path), "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, to clean up Ray's leftovers after
    )
    try:
        deadline = time.monotonic() + 90
        acknowledged = 0
        while acknowledged < 2000:
            assert runtime.poll() is None, runtime.stdout.read() if runtime.stdout else ""
            assert time.monotonic() < deadline, "the session did not get going"
            logs = list(tmp_path.glob("*.db"))
            acknowledged = committed_ticks(logs[0]) if logs else 0
            time.sleep(0.1)
        acknowledged = committed_ticks(logs[0])
        os.kill(runtime.pid, signal.SIGKILL)  # no chance to flush or close anything
        runtime.wait(30)
        time.sleep(2)  # Ray's reaper takes the session's workers down
    finally:
        with contextlib.suppress(ProcessLookupError):  # agents Ray leaves orphaned
            os.killpg(runtime.pid, signal.SIGKILL)

    log = logs[0]
    db = sqlite3.connect(log)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with LogReader(log) as reader:
        ticks = [m.value for m in reader.messages(source="ticker") if isinstance(m, Metric)]
        events = list(reader.messages(types=["mission_event"]))
        assert reader.skipped == 0
        assert reader.meta()["mission_name"] == "route_clearance"
    assert len(ticks) >= acknowledged  # every acknowledged message is there
    assert ticks == list(range(len(ticks)))  # in order, with no gap
    assert events  # and the other actors' messages too
    # `twin log` reads it back
    shown = subprocess.run([sys.executable, "-m", "twin.cli", "log", str(log), "--type",
                            "mission_event"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "mission started" in shown.stdout
