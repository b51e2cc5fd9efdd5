"""The avatar page in a real headless Chromium, on a real running session and gateway.

A session (recorder, mission clock, avatar gateway) runs in this process on a LocalBus, in a
thread; the test publishes the twin's ``Speech`` on its bus and reads back, through the page's
test hook (``window.__twinTest``), when the audio started and which mouth shape was drawn at each
frame. A screenshot of the page while the twin speaks is saved to the artifacts folder.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar.browser import wait_until
from twin.config import load_config, load_mission
from twin.log import LogReader
from twin.messages import (
    Message,
    MissionEvent,
    Speech,
    SpeechCut,
    TrainerControl,
    Transcript,
    TwinDecision,
    TwinUtterance,
    Viseme,
    WordTiming,
)
from twin.runtime import Session
from twin.testing import core_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "missions" / "route_clearance.yaml"
RATE = 22050


def voice(seconds: float) -> bytes:
    """A voiced sound (a 150 Hz buzz with a syllable rhythm): real audio for the page to play."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.sign(np.sin(2 * np.pi * 150 * t)) * 0.2 + np.sin(2 * np.pi * 300 * t) * 0.1
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (wave * envelope * 32767).astype("<i2").tobytes()


class LiveSession:
    """``twin.runtime.Session`` with the avatar gateway, running in a thread of this process."""

    def __init__(self, tmp_path: Path) -> None:
        config = core_config(load_config(ROOT / "configs" / "test.yaml"), tmp_path,
                             avatar={"class": "avatar.gateway.AvatarGateway",
                                     "settings": {"port": 0}})
        self.mission = load_mission(MISSION)
        self.session = Session(config, self.mission, local=True, speed=1.0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.result: Any = None

    def _run(self) -> None:
        self.result = self.loop.run_until_complete(self.session.run(timeout=300))

    def __enter__(self) -> LiveSession:
        self.thread.start()
        deadline = time.monotonic() + 30
        while "avatar" not in self.session.links:
            assert self.thread.is_alive() and time.monotonic() < deadline, "no gateway links"
            time.sleep(0.05)
        self.links = self.session.links["avatar"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.session.stop, "test over")
        self.thread.join(30)

    def publish(self, message: Message) -> None:
        asyncio.run_coroutine_threadsafe(self.session.publish(message), self.loop).result(10)

    def log(self, kind: str) -> list[Message]:
        with LogReader(self.session.log_path) as reader:
            return list(reader.messages(types=[kind]))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveSession]:
    with LiveSession(tmp_path) as session:
        yield session


def open_page(page: Any, link: str) -> None:
    """Load the page and wait until it is connected and past its first, slow, frames."""
    page.goto(link)
    wait_until(page, "window.__twinTest && window.__twinTest.state().connected", 15)
    wait_until(page, "window.__twinTest.fps(0.5) >= 10", 15)


# A track with shapes far apart, each long enough to be seen at any frame rate above a few fps
TRACK = [("sil", 0.0, 0.25), ("aa", 0.25, 0.5), ("PP", 0.75, 0.3), ("ou", 1.05, 0.5),
         ("sil", 1.55, 0.3)]


def test_the_twin_speaks_with_its_mouth_in_step_and_the_console_follows(
        live: LiveSession, chromium_page: Any, artifacts: Path) -> None:
    page = chromium_page
    open_page(page, live.links["operator"])
    live.publish(MissionEvent(kind="phase_started", mission=live.mission.name, mission_time=0.0,
                              name=live.mission.phases[0].id))
    live.publish(Transcript(text="What is our fuel state across the package?", final=True,
                            turn=7, confidence=0.91))
    live.publish(TwinDecision(trigger="question", intent="answer", style="brief", hedge=False,
                              confidence=0.82, turn=7))
    live.publish(TwinUtterance(text="Fuel is fine.", index=0, final=True, turn=7))
    visemes = [Viseme(viseme=v, start=s, duration=d) for v, s, d in TRACK]
    live.publish(Speech(text="Fuel is fine.", index=0, final=True, pcm=voice(1.85), turn=7,
                        visemes=visemes, words=[WordTiming(word="Fuel", start=0.25, end=0.75),
                                                WordTiming(word="is", start=0.75, end=1.05),
                                                WordTiming(word="fine.", start=1.05, end=1.55)]))
    # The speech is scheduled, starts on the audio clock and is heard (the page's analyser)
    record = wait_until(page, """(() => { const s = window.__twinTest.state().speeches
        .find((r) => r.turn === 7); return s && s.audibleAt && s; })()""", 10)
    assert record["startAt"] is not None and not record["muted"]
    assert record["startedAt"] >= record["receivedAt"]
    page.wait_for_timeout(2300)  # the whole sentence
    frames = [f for f in page.evaluate("window.__twinTest.frames()") if f["turn"] == 7]
    assert len(frames) >= 8, frames

    # At each viseme's time the page holds that viseme, and draws its shape
    def held(name: str, start: float, duration: float) -> list[dict[str, Any]]:
        inside = [f for f in frames if start + 0.07 <= f["t"] <= start + duration - 0.02]
        assert inside, f"no frame drawn during {name} at {start}-{start + duration} s"
        assert all(f["viseme"] == name for f in inside), inside
        return inside

    shapes = {name: held(name, start, duration) for name, start, duration in TRACK[1:4]}
    gap = {name: max(f["gap"] for f in inside) for name, inside in shapes.items()}
    width = {name: min(f["width"] for f in inside) for name, inside in shapes.items()}
    assert gap["aa"] > 15 and gap["PP"] < 2 and gap["aa"] > gap["ou"] > gap["PP"]  # jaw
    assert width["ou"] < width["aa"] - 5  # rounded lips
    assert not [f for f in frames if f["t"] > 1.85 + 0.05]  # nothing after the audio ends

    # The console: the operator's final line and the twin's reply with intent and confidence
    text = page.evaluate("window.__twinTest.transcriptText()")
    assert "What is our fuel state across the package?" in text
    assert "answer · 82%" in text and "Fuel is fine." in text
    assert page.locator("#phase").inner_text() == live.mission.phases[0].title
    assert page.locator("#controls").is_hidden()  # not the trainer

    # Speaking: screenshot while the mouth is open, then cut the speech short
    live.publish(Speech(text="Moving to the release point now, all callsigns report ready.",
                        index=0, final=True, pcm=voice(4.0), turn=8, expression="concerned",
                        visemes=[Viseme(viseme="sil", start=0, duration=0.2),
                                 Viseme(viseme="aa", start=0.2, duration=3.8)]))
    wait_until(page, """window.__twinTest.frames().some((f) => f.turn === 8 && f.gap > 12)""", 10)
    page.screenshot(path=str(artifacts / "avatar-speaking.png"))
    live.publish(SpeechCut(spoken_text="Moving to", sentence_index=0, at_seconds=1.0, turn=8))
    cut = wait_until(page, "window.__twinTest.state().cuts.find((c) => c.turn === 8)", 10)
    assert cut["stopped"] == 1
    page.wait_for_timeout(500)
    late = [f for f in page.evaluate("window.__twinTest.frames()")
            if f["turn"] == 8 and f["wall"] > cut["at"] + 50]
    assert not late, "the mouth kept moving after the cut"
    assert page.twin_errors == []


def test_a_viewer_cannot_pause_the_mission_but_the_trainer_can(
        live: LiveSession, chromium_page: Any, chromium_browser: Any) -> None:
    viewer = chromium_page
    open_page(viewer, live.links["viewer"])
    assert viewer.locator("#controls").is_hidden()
    viewer.evaluate("""window.__twinTest.send(JSON.stringify({op: "control", command: "pause"}))""")
    error = wait_until(viewer, "window.__twinTest.state().errors[0]", 5)
    assert error["code"] == "forbidden"
    time.sleep(0.5)
    assert live.log("trainer_control") == []

    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        trainer = context.new_page()
        open_page(trainer, live.links["trainer"])
        trainer.locator("#btn-pause").click()
        wait_until(trainer, "!document.getElementById('paused').hidden", 10)
        wait_until(viewer, "!document.getElementById('paused').hidden", 10)  # every page sees it
    finally:
        context.close()
    controls = live.log("trainer_control")
    assert [(c.command, c.source) for c in controls if isinstance(c, TrainerControl)] == [
        ("pause", "avatar")]
    assert any(isinstance(e, MissionEvent) and e.kind == "paused"
               for e in live.log("mission_event"))


def test_a_bad_or_missing_token_is_refused(live: LiveSession, chromium_page: Any) -> None:
    page = chromium_page
    base = live.links["viewer"].split("#")[0]
    page.goto(base + "#token=not-the-token")
    wait_until(page, "window.__twinTest.state().errors.length > 0", 10)
    state = page.evaluate("window.__twinTest.state()")
    assert state["errors"][0]["code"] == "unauthorized" and not state["connected"]
    wait_until(page, "document.getElementById('conn-text').textContent === 'refused'", 5)
    assert "not valid" in page.locator("#banner").inner_text()
    page.wait_for_timeout(1000)
    assert page.evaluate("window.__twinTest.state().welcomes") == 0  # and it does not retry
    page.goto(base)
    wait_until(page, "document.getElementById('conn-text').textContent === 'no token'", 5)
    assert "twin run" in page.locator("#banner").inner_text()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_page_reconnects_after_the_gateway_restarts(chromium_page: Any) -> None:
    """A gateway restarted (as Ray restarts a crashed one: same session, same port) accepts the
    page's link again; the page reconnects by itself and plays what the new one relays."""
    from avatar.gateway import AvatarGateway
    from twin.actor import SessionInfo
    from twin.testing import Harness

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    info = SessionInfo(id="restart", mission=load_mission(MISSION), secret="restart-secret")
    port = free_port()

    def start() -> tuple[Harness, AvatarGateway]:
        gateway = AvatarGateway({"port": port}, name="avatar", session=info)
        harness = Harness(gateway)
        asyncio.run_coroutine_threadsafe(harness.__aenter__(), loop).result(30)
        assert not gateway.failed, gateway.failed
        return harness, gateway

    page = chromium_page
    harness, gateway = start()
    try:
        open_page(page, gateway.access.links(gateway.url)["operator"])
        asyncio.run_coroutine_threadsafe(harness.__aexit__(None, None, None), loop).result(30)
        wait_until(page, "document.getElementById('conn-text').textContent === 'reconnecting'",
                   10)
        assert "reconnecting" in page.locator("#banner").inner_text()
        harness, gateway = start()
        wait_until(page, "window.__twinTest.state().welcomes === 2 && "
                         "window.__twinTest.state().connected", 20)
        assert page.locator("#banner").is_hidden()
        speech = Speech(text="Back online.", index=0, final=True, pcm=voice(0.6), turn=3,
                        visemes=[Viseme(viseme="aa", start=0.0, duration=0.6)])
        asyncio.run_coroutine_threadsafe(harness.send(speech), loop).result(10)
        wait_until(page, """window.__twinTest.state().speeches
            .some((s) => s.turn === 3 && s.audibleAt)""", 10)
    finally:
        asyncio.run_coroutine_threadsafe(harness.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_the_operator_can_speak_through_the_browser_microphone(
        live: LiveSession, chromium_browser: Any) -> None:
    """Chromium's fake microphone (a beep) through the page: 100 ms 16 kHz frames on the bus."""
    from avatar.browser import CHROMIUM, launch_args

    browser = chromium_browser.browser_type.launch(
        executable_path=CHROMIUM, args=launch_args(extra_args=(
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")))
    try:
        context = browser.new_context()
        context.grant_permissions(["microphone"])
        page = context.new_page()
        open_page(page, live.links["operator"])
        page.locator("#mic").click()
        wait_until(page, "window.__twinTest.microphone().sent >= 16000", 15)  # a second
        assert page.locator("#mic").get_attribute("aria-pressed") == "true"
        page.locator("#mic").click()
        context.close()
    finally:
        browser.close()
    time.sleep(0.5)
    frames = [m for m in live.log("audio_frame") if m.source == "avatar"]
    assert len(frames) >= 10
    assert all(len(f.pcm) == 3200 and f.sample_rate == 16000 for f in frames)  # type: ignore[attr-defined]
    starts = [f.start for f in frames]  # type: ignore[attr-defined]
    assert starts == sorted(starts) and starts[1] - starts[0] == pytest.approx(0.1)
    pcm = np.frombuffer(b"".join(f.pcm for f in frames), "<i2")  # type: ignore[attr-defined]
    assert np.abs(pcm).max() > 1000  # the beep, not silence


def test_the_viewer_has_no_microphone_button(live: LiveSession, chromium_page: Any) -> None:
    open_page(chromium_page, live.links["viewer"])
    assert chromium_page.locator("#mic").is_hidden()
    assert chromium_page.locator("#say").is_hidden()  # nor a box to type to the twin


def test_the_operator_types_a_question_and_it_reaches_the_bus_as_a_typed_transcript(
        live: LiveSession, chromium_page: Any) -> None:
    page = chromium_page
    open_page(page, live.links["operator"])
    box = page.locator("#say-text")
    assert box.is_visible() and page.locator("#say-send").is_visible()

    # Nothing typed: the gateway refuses it and the page says why beside the box
    page.locator("#say-send").click()
    wait_until(page, "!document.getElementById('say-error').hidden", 10)
    assert "nothing to send" in page.locator("#say-error").inner_text()
    assert page.locator("#toast").is_hidden()  # said beside the box, not in a toast

    question = "What is our fuel state across the package?"
    box.fill(question)
    box.press("Enter")
    wait_until(page, "window.__twinTest.state().acks.some((a) => a.op === 'say')", 10)
    wait_until(page, "document.getElementById('say-text').value === ''", 5)  # sent: cleared
    assert page.locator("#say-error").is_hidden()

    # On the bus (read back from the session log, which records everything on it)
    deadline = time.monotonic() + 10
    while not (typed := [m for m in live.log("transcript") if isinstance(m, Transcript)]):
        assert time.monotonic() < deadline, "no transcript in the session log"
        time.sleep(0.1)
    assert [(m.text, m.final, m.typed, m.speaker, m.turn, m.source) for m in typed] == [
        (question, True, True, "operator", None, "avatar")]  # once, and not the empty one

    # On the page, from the bus: an operator line marked as typed
    line = wait_until(page, """(() => { const li = document.querySelector(
        '#transcript li.operator.typed'); return li && li.innerText; })()""", 10)
    assert question in line and "typed" in line.lower()
    assert page.twin_errors == []


def test_suspended_sound_shows_click_to_enable_and_a_click_brings_it_back(
        live: LiveSession, chromium_page: Any) -> None:
    page = chromium_page
    open_page(page, live.links["operator"])
    assert page.locator("#overlay").is_hidden()
    page.evaluate("window.__twinTest.suspendAudio()")
    wait_until(page, "!document.getElementById('overlay').hidden", 5)
    live.publish(Speech(text="Nobody hears this.", index=0, final=True, pcm=voice(0.5), turn=4,
                        visemes=[Viseme(viseme="aa", start=0.0, duration=0.5)]))
    muted = wait_until(page, """window.__twinTest.state().speeches
        .find((s) => s.turn === 4)""", 10)
    assert muted["muted"] and muted["startAt"] is None  # not queued to blurt out later
    page.locator("#enable-sound").click()
    wait_until(page, "window.__twinTest.state().audio === 'running'", 5)
    wait_until(page, "document.getElementById('overlay').hidden", 5)
