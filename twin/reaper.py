"""The reaper: takes down what a `twin run` started on its own local Ray once the run is gone.

Ray's processes follow their driver when it ends, and most of them when it is killed; Ray's
dashboard and runtime-env agents do not (killed with the driver's GCS, they wait for it
forever), and the actors run on for a while, writing to the log. So when the runtime starts a
local Ray it also starts this watcher, in a session of its own (a ``kill`` of the run's process
group leaves it be): ``python -m twin.reaper PID``. Twice a second it notes Ray's processes
under ``PID`` (its children that run Ray, GCS, raylet and Ray's scripts, and everything under
them; each by pid and start time: a pid the system gives again to another process is never
taken for one of them); once ``PID`` has ended (or is a zombie) it SIGKILLs those that are left
and exits. Other processes ``PID`` started are not its business. It reads ``/proc``, so it
works on Linux; elsewhere ``start`` starts nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

PROC = Path("/proc")
INTERVAL_S = 0.5

Stat = tuple[str, int, int]  # state, parent pid, start time (clock ticks since boot)


def start(pid: int | None = None) -> subprocess.Popen[bytes] | None:
    """Start the reaper of ``pid`` (this process by default); None where there is no /proc."""
    if not (PROC / "self" / "stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "twin.reaper", str(pid or os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def stat(pid: int) -> Stat | None:
    """The state, parent and start time of ``pid``; None if there is no such process."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()  # after "pid (name) ", the name may hold anything
    return fields[0].decode(), int(fields[1]), int(fields[19])


def processes() -> dict[int, Stat]:
    table: dict[int, Stat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (found := stat(int(entry.name))) is not None:
            table[int(entry.name)] = found
    return table


def descendants(root: int, table: dict[int, Stat]) -> dict[int, int]:
    """The processes under ``root`` in ``table``: pid -> start time."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, (_, parent, _) in table.items():
        children[parent].append(pid)
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found[child] = table[child][2]
                todo.append(child)
    return found


def runs_ray(pid: int) -> bool:
    """Whether ``pid`` runs a program of Ray's package (its command names a ``/ray/`` path)."""
    try:
        return b"/ray/" in (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def ray_under(pid: int, table: dict[int, Stat]) -> dict[int, int]:
    """Ray's processes under ``pid``: its children that run Ray and all under them."""
    found: dict[int, int] = {}
    for child, (_, parent, started) in table.items():
        if parent == pid and runs_ray(child):
            found[child] = started
            found.update(descendants(child, table))
    return found


def watch(pid: int, interval: float = INTERVAL_S) -> int:
    """Note Ray's processes under ``pid`` until it ends, then kill what is left; how many."""
    first = stat(pid)
    if first is None:
        return 0
    seen: dict[int, int] = {}
    while (now := stat(pid)) is not None and now[2] == first[2] and now[0] != "Z":
        seen.update(ray_under(pid, processes()))
        time.sleep(interval)
    killed = 0
    for child, started in seen.items():
        left = stat(child)
        if left is not None and left[2] == started and left[0] != "Z":
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                continue
            killed += 1
    return killed


if __name__ == "__main__":
    watch(int(sys.argv[1]))
