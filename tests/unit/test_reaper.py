"""The reaper: once the process it watches is SIGKILLed, Ray's processes under it (also those
in a session of their own, as Ray's agents are) are killed, and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from twin import reaper

pytestmark = [pytest.mark.unit,
              pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")]

# A stand-in for a `twin run` on its local Ray. It starts a process whose command names a /ray/
# path (as Ray's gcs_server, raylet and scripts do), which starts one in a session of its own
# (as Ray's agents are: out of reach of a kill of the run's group); and a process of its own
# that is not Ray's. It prints the three pids and waits.
RAY = """
import subprocess, sys, time
agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
print(agent.pid, flush=True)
time.sleep(600)
"""
RUN = """
import subprocess, sys, time
ray = subprocess.Popen([sys.executable, "-c", sys.argv[1], "/ray/stand-in"],
                       stdout=subprocess.PIPE, text=True)
agent = int(ray.stdout.readline())
other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(ray.pid, agent, other.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    found = reaper.stat(pid)
    return found is not None and found[0] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_rays_processes_under_a_killed_run_are_killed_and_nothing_else() -> None:
    run = subprocess.Popen([sys.executable, "-c", RUN, RAY], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    ray, agent, other = map(int, run.stdout.readline().split())
    watcher = reaper.start(run.pid)
    assert watcher is not None
    try:
        time.sleep(3 * reaper.INTERVAL_S)  # it has noted them
        assert alive(ray) and alive(agent) and watcher.poll() is None
        assert set(reaper.ray_under(run.pid, reaper.processes())) == {ray, agent}
        os.kill(run.pid, signal.SIGKILL)  # not waited for yet: a zombie counts as gone
        assert wait_until(lambda: not alive(ray) and not alive(agent), 5), "Ray's were left"
        assert watcher.wait(5) == 0
        assert alive(other)  # not Ray's: not the reaper's business
    finally:
        for pid in (run.pid, ray, agent, other):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.wait(5)
        watcher.wait(5)


def test_the_tree_under_a_process_is_read_from_proc() -> None:
    table = reaper.processes()
    assert table[os.getpid()][1] == os.getppid()
    assert os.getpid() in reaper.descendants(os.getppid(), table)
    assert reaper.stat(2**22 + 1) is None  # past pid_max: no such process
