"""`twin replay --avatar` as a reviewer runs it: a recorded session played again to the avatar
page in a real headless Chromium — the twin's recorded speech plays with its viseme track, the
console shows the recorded words — at a chosen speed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from avatar.browser import wait_until
from twin.config import load_mission
from twin.log import SessionLog
from twin.messages import (
    Message,
    MissionEvent,
    Speech,
    Transcript,
    TwinUtterance,
    Viseme,
    WordTiming,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "mountain_rescue.yaml"
RATE = 22050
LINK = re.compile(r"replay on the avatar page: (http://\S+)")


def buzz(seconds: float) -> bytes:
    """A voiced sound with a syllable rhythm (real audio for the page to play)."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * 0.4
    return (wave * 32767).astype("<i2").tobytes()


def recorded(t0: float) -> list[Message]:
    def at(seconds: float, message: Message, source: str, seq: int) -> Message:
        return msgspec.structs.replace(message, t=t0 + seconds, source=source, seq=seq,
                                       session="replayed-1")

    sentence = "Task areas B, A and C first."
    return [
        at(0.0, MissionEvent(kind="mission_started", mission="mountain_rescue", mission_time=0,
                             text="Exercise GREY FELL"), "mission", 0),
        at(0.1, MissionEvent(kind="phase_started", mission="mountain_rescue", mission_time=0,
                             name="callout", text="Call-out and search planning"), "mission", 1),
        at(1.0, Transcript(text="Which search areas do we task first?", final=True,
                           confidence=0.9, turn=1), "speech", 0),
        at(1.5, TwinUtterance(text=sentence, index=0, final=True, turn=1), "dialogue", 0),
        at(2.0, Speech(text=sentence, index=0, final=True, pcm=buzz(1.6), sample_rate=RATE,
                       visemes=[Viseme(viseme="sil", start=0.0, duration=0.2),
                                Viseme(viseme="aa", start=0.2, duration=0.5),
                                Viseme(viseme="PP", start=0.7, duration=0.3),
                                Viseme(viseme="ou", start=1.0, duration=0.4),
                                Viseme(viseme="sil", start=1.4, duration=0.2)],
                       words=[WordTiming(word="Task", start=0.2, end=0.5)], turn=1),
           "lipsync", 0),
        at(6.0, MissionEvent(kind="mission_ended", mission="mountain_rescue", mission_time=180,
                             name="mountain_rescue", text="mission complete"), "mission", 2),
    ]


def test_a_recorded_session_plays_again_on_the_avatar_page(
        tmp_path: Path, chromium_page: Any, artifacts: Path) -> None:
    mission = load_mission(MISSION)
    log = SessionLog.create(tmp_path / "replayed-1.db", {
        "session": "replayed-1", "mission_name": mission.name, "mode": "training",
        "mission": mission.model_dump(mode="json")})
    messages = recorded(time.time() - 3600)
    log.append(messages)
    log.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "replay", str(tmp_path / "replayed-1.db"), "--avatar",
         "--speed", "2", "--wait", "10"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        link = None
        while link is None:
            line = process.stdout.readline()
            assert line, "\n".join(lines)
            lines.append(line.rstrip())
            match = LINK.search(line)
            link = match.group(1) if match else None
        page = chromium_page
        page.goto(link)
        wait_until(page, "window.__twinTest && window.__twinTest.state().connected", 15)
        assert page.locator("#role").inner_text().lower() == "viewer"
        record = wait_until(page, """(() => window.__twinTest.state().speeches
            .find((s) => s.audibleAt))()""", 30)
        assert record["turn"] == 1 and [v["viseme"] for v in record["visemes"]][:3] == [
            "sil", "aa", "PP"]
        wait_until(page, "document.body.innerText.includes('Which search areas')", 10)
        page.screenshot(path=str(artifacts / "replay-avatar.png"))
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = "\n".join(lines) + out
    assert process.returncode == 0, text
    assert f"replayed {len(messages)} messages" in text and "at speed 2" in text
    assert page.twin_errors == []
