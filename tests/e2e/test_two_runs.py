"""Two `twin run`s side by side on one machine, started at once as two users would, with the
same config: its page port (8765) can be only one's. The other listens on a free port and
prints its own links; each page and ``/healthz`` answer on their port for their own session;
each trainer link's token opens its own page's socket and is refused by the other's; each
session is ended from its trainer link and its `twin run` exits cleanly, on its own Ray, with
no process of it left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "route_clearance.yaml"
PORT = 8765
LINK = re.compile(r"^twin: avatar (operator|trainer|viewer)\s+(http://\S+)$")
SESSION = re.compile(r"^twin: session (\S+): mission")


class Run:
    """One `twin run` in its own process group, its output read line by line as it comes."""

    def __init__(self, config: Path, folder: Path) -> None:
        folder.mkdir()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "run", str(MISSION), "--config", str(config),
             "--quiet", "--timeout", "150"],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def found(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return [m for m in map(pattern.match, list(self.lines)) if m]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def finish(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self, left: list[int]) -> None:
        """SIGKILL the run's process group and what else of it is ``left``."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read().decode()


def greet(ws: Any, token: str) -> dict[str, Any]:
    """Say hello on a page's socket with ``token``: the first frame that comes back."""
    ws.send(json.dumps({"op": "hello", "token": token}))
    return dict(json.loads(ws.recv(timeout=10)))


def acknowledged(ws: Any) -> bool:
    """Whether an ``ack`` comes among the page's next frames (bus messages come too)."""
    deadline = time.monotonic() + 10
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        while time.monotonic() < deadline:
            if json.loads(ws.recv(timeout=deadline - time.monotonic())).get("type") == "ack":
                return True
    return False


@pytest.mark.timeout(400)
def test_two_twin_runs_side_by_side_each_have_a_working_page(
        tmp_path: Path, left_of: Callable[[int], list[int]]) -> None:
    config = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    config["session"]["log_dir"] = "sessions"
    config["actors"] = {name: config["actors"][name] for name in ("recorder", "mission", "avatar")}
    config["actors"]["avatar"]["settings"]["port"] = PORT  # as configs/default.yaml
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    free = port_is_free(PORT)

    runs = [Run(config_path, tmp_path / name) for name in ("one", "two")]
    try:
        deadline = time.monotonic() + 180
        while not all(len(run.found(LINK)) == 3 for run in runs):
            for run in runs:
                assert run.process.poll() is None, run.text
            assert time.monotonic() < deadline, "\n---\n".join(run.text for run in runs)
            time.sleep(0.2)
        links = [{m.group(1): m.group(2) for m in run.found(LINK)} for run in runs]
        sessions = [run.found(SESSION)[0].group(1) for run in runs]
        bases = [page["trainer"].split("/#token=")[0] for page in links]
        tokens = [page["trainer"].split("#token=")[1] for page in links]
        ports = [int(base.rsplit(":", 1)[1]) for base in bases]
        assert ports[0] != ports[1] and sessions[0] != sessions[1], (links, sessions)
        if free:  # one has the configured port, the other one that was free
            assert PORT in ports, ports
        every_token = {url.split("#token=")[1] for page in links for url in page.values()}
        assert len(every_token) == 6  # never a shared token

        for run, base, session, token, other in zip(runs, bases, sessions, tokens, tokens[::-1],
                                                     strict=True):
            assert run.process.poll() is None, run.text  # the other's end left it running
            status, page = fetch(base + "/")
            assert status == 200 and "<html" in page.lower()
            status, body = fetch(base + "/healthz")
            assert status == 200 and json.loads(body)["session"] == session
            socket_url = base.replace("http://", "ws://") + "/ws"
            with connect(socket_url, open_timeout=10) as ws:  # the other session's token
                refused = greet(ws, other)
                assert refused["type"] == "error" and refused["code"] == "unauthorized"
            with connect(socket_url, open_timeout=10) as ws:
                welcome = greet(ws, token)
                assert welcome["type"] == "welcome", welcome
                assert welcome["role"] == "trainer" and welcome["session"] == session
                ws.send(json.dumps({"op": "control", "command": "end", "argument": "test"}))
                assert acknowledged(ws), "the trainer's end was not acknowledged"
            assert run.finish(90) == 0, run.text
            assert "session ended (mission ended" in run.text, run.text
            assert "did not stop" not in run.text and "Traceback" not in run.text, run.text
            deadline = time.monotonic() + 30  # Ray's processes too
            while left_of(run.process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not left_of(run.process.pid), f"processes of {session} outlived it"
        if free:  # and the one that could not have it said so
            moved = runs[1 - ports.index(PORT)]
            assert f"port {PORT} is taken (another session?); listening on" in moved.text
    finally:
        for run in runs:
            run.kill(left_of(run.process.pid))
