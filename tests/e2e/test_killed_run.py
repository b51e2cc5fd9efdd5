"""SIGKILL of a whole `twin run` at random moments, 51 times: each time the session log opens,
passes SQLite's ``PRAGMA integrity_check``, the twin's reader reads every row of it, and
`twin review` reports what it holds (an empty log too: a clear report, never a traceback).

The runs are `twin run --local` (every actor in one process: a start costs a second or two, not
Ray's ten) of the example mission at speed 60, with the recorder, the mission clock, the avatar
gateway and a ticker publishing 500 numbered messages a second (the log is being written at
every moment). A first run goes to its end and times the three parts of a session: startup
(from the moment its log is being made to the first message committed), the mission, and
shutdown (the mission's end in the log to the exit). Each later run is killed (SIGKILL of its
process group) in one part after the other, at a moment drawn by ``random.Random(SEED)`` within
that part's time, counted from the start of the part as a reader of the log sees it. Each log
is reviewed by ``read_session`` in this process, and by the `twin review` CLI for every fifth
and the first of each kind (empty, cut in the mission, ended). One more run, on its own local
Ray, is killed in the middle of its mission as a user does (``kill -9`` of its pid alone). No
process of any run is left behind, Ray's included (``twin.reaper``).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from twin.log import LogReader
from twin.messages import Metric, MissionEvent, decode
from twin.review import read_session

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "route_clearance.yaml"
SEED = 15  # the number: the kill moments are the same on every run of the test
KILLS = 51
SPEED = "60"
PHASES = ("startup", "mission", "shutdown")


def write_config(folder: Path) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    config["session"]["log_dir"] = "sessions"  # in each run's own folder
    config["actors"] = {name: config["actors"][name] for name in ("recorder", "mission", "avatar")}
    config["actors"]["ticker"] = {"class": "twin.testing.Ticker",
                                  "settings": {"interval_s": 0.002, "count": 0}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(config: Path, folder: Path, *extra: str) -> subprocess.Popen[str]:
    folder.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "run", str(MISSION), "--config", str(config),
         "--speed", SPEED, "--quiet", *extra],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: killed whole, checked empty after
    )


def the_log(folder: Path) -> Path | None:
    logs = list((folder / "sessions").glob("*.db"))
    assert len(logs) <= 1, logs
    return logs[0] if logs else None


def progress(folder: Path) -> tuple[bool, bool, bool]:
    """(the log is being made, a message is committed, the mission has ended), as a reader of
    the log sees it now."""
    made = (folder / "sessions").is_dir() and any((folder / "sessions").iterdir())
    log = the_log(folder)
    if log is None:
        return made, False, False
    try:
        db = sqlite3.connect(f"file:{log}?mode=ro", uri=True, timeout=1)
        try:
            some = db.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None
            events = db.execute("SELECT data FROM messages WHERE type = 'mission_event'")
            ended = any(getattr(decode(data), "kind", "") == "mission_ended"
                        for (data,) in events)
        finally:
            db.close()
    except sqlite3.Error:  # being written: look again
        return True, False, False
    return True, some, ended


def wait_for(process: subprocess.Popen[str], folder: Path, stage: int, limit: float) -> float:
    """Poll until ``progress`` holds its ``stage`` (0, 1, 2); the time it took."""
    began = time.monotonic()
    while time.monotonic() - began < limit and process.poll() is None:
        if progress(folder)[stage]:
            break
        time.sleep(0.01)
    return time.monotonic() - began


def kill(process: subprocess.Popen[str], left_of: Callable[[int], list[int]], *,
         group: bool = True) -> list[int]:
    """SIGKILL the run (its process group, or its pid alone as a user's ``kill -9 PID``) and
    wait until no process of it is left; those still there after 15 s are killed and returned."""
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(process.pid, signal.SIGKILL)
    process.wait(30)
    deadline = time.monotonic() + 15
    while (left := left_of(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def check(log: Path) -> tuple[str, int, int]:
    """The log after a kill: whole, read by the twin's reader, reviewed. Returns how far the
    session had got (startup, mission, shutdown), its rows and its mission events."""
    db = sqlite3.connect(log)  # recovers what the WAL holds, as any SQLite reader
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], log
        rows = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        events = db.execute(
            "SELECT COUNT(*) FROM messages WHERE type = 'mission_event'").fetchone()[0]
    finally:
        db.close()
    with LogReader(log) as reader:
        assert reader.damaged is None
        assert reader.meta()["mission_name"] == "route_clearance"
        messages = list(reader.messages())
        assert reader.skipped == 0 and len(messages) == rows
    ticks = [m.value for m in messages if isinstance(m, Metric) and m.name == "tick"]
    assert ticks == list(range(len(ticks)))  # what was committed is there, with no gap
    ended = any(isinstance(m, MissionEvent) and m.kind == "mission_ended" for m in messages)

    review = read_session(log)
    assert len(review.events) == events
    cut_short = any("ends before the mission did" in note for note in review.notes)
    assert cut_short == (not ended), review.notes
    assert review.messages == rows
    assert ("the log holds no messages" in review.notes) == (rows == 0), review.notes
    return ("startup" if rows == 0 else "shutdown" if ended else "mission"), rows, events


def review_cli(log: Path, rows: int, events: int) -> None:
    """`twin review` of the log, as a user types it: a report, and what it holds in a line."""
    report = log.parent / "report.html"
    shown = subprocess.run(
        [sys.executable, "-m", "twin.cli", "review", str(log), "-o", str(report)],
        cwd=log.parent, capture_output=True, text=True, timeout=120)
    said = shown.stdout + shown.stderr
    assert shown.returncode == 0 and "Traceback" not in said, said
    line = rf"report of {re.escape(log.stem)} in \S+: {events} mission events"
    assert re.search(line, said), said
    if rows == 0:
        assert "the log holds no messages" in said, said
    else:
        assert "the log holds no messages" not in said, said
    assert log.stem in report.read_text()


@pytest.mark.timeout(600)
def test_sigkill_of_twin_run_at_random_moments_always_leaves_a_whole_reviewable_log(
        tmp_path: Path, left_of: Callable[[int], list[int]]) -> None:
    config = write_config(tmp_path)
    began = time.monotonic()

    # A whole run, timed: its three parts bound the kill moments of the others.
    folder = tmp_path / "whole"
    process = start(config, folder, "--local")
    try:
        made = wait_for(process, folder, 0, 60)
        startup = wait_for(process, folder, 1, 60)
        mission = wait_for(process, folder, 2, 60)
        ended = time.monotonic()
        out, _ = process.communicate(timeout=60)
        shutdown = time.monotonic() - ended
    finally:
        leaks = kill(process, left_of)
    assert not leaks and process.returncode == 0, (leaks, out)
    assert "session ended (mission ended" in out, out
    log = the_log(folder)
    assert log is not None
    state, rows, events = check(log)
    assert state == "shutdown"
    review_cli(log, rows, events)
    # startup: from the moment the log is being made (before that there is nothing to read)
    windows = {"startup": startup, "mission": mission, "shutdown": shutdown}

    pick = random.Random(SEED)
    reached: Counter[str] = Counter()
    reviewed: set[str] = set()
    for n in range(KILLS):
        aim = PHASES[n % 3]
        delay = pick.uniform(0, windows[aim])
        folder = tmp_path / f"run{n:02}"
        process = start(config, folder, "--local")
        try:
            wait_for(process, folder, PHASES.index(aim), 60)
            time.sleep(delay)
            finished = process.poll() is not None
        finally:
            leaks = kill(process, left_of)
        assert not leaks, leaks
        log = the_log(folder)
        if log is None:  # killed before its log was whole: there is no log to read
            reached["before its log"] += 1
            continue
        state, rows, events = check(log)
        reached["after its end" if finished else state] += 1
        if state not in reviewed or n % 5 == 0:  # the CLI for some, each kind of log once
            review_cli(log, rows, events)
            reviewed.add(state)
    print(f"seed {SEED}; windows {windows} (log made after {made:.2f} s); "
          f"the kills reached {dict(reached)}; {time.monotonic() - began:.0f} s")
    assert sum(reached.values()) == KILLS
    assert all(reached[phase] >= 3 for phase in PHASES), reached  # each part got some

    # And once on Ray, in the middle of the mission, killed as a user does (`kill -9 PID`):
    # Ray's processes go with it.
    folder = tmp_path / "ray"
    process = start(config, folder)
    try:
        assert wait_for(process, folder, 1, 120) < 120, "the session on Ray did not start"
        time.sleep(pick.uniform(0, windows["mission"]))
        assert process.poll() is None
    finally:
        leaks = kill(process, left_of, group=False)
    assert not leaks, f"processes of the killed run were left running: {leaks}"
    log = the_log(folder)
    assert log is not None
    state, rows, events = check(log)
    assert state == "mission"
    review_cli(log, rows, events)
