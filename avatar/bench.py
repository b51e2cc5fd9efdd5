"""``twin bench avatar``: how fast the twin's speech reaches the page and how smoothly the face
moves, in headless Chromium, beside baselines measured in the same run.

A gateway runs on a LocalBus in this process (a thread with its own event loop) and the page is
open in Chromium (``avatar.browser``). For each sample a short ``Speech`` (0.3 s of audio, a
viseme track) goes either

- **through the bus**: published on the bus (its ``t`` stamped at publication), handled by the
  gateway actor, encoded and relayed to the page; or
- **raw** (the baseline): the same message, stamped and encoded, put straight onto the page's
  socket by the gateway's web server, skipping the bus and the actor;

and the page records, on its own clock (the same wall clock: one machine), when the frame arrived
and when its first sample is scheduled to play on the Web Audio clock. The figures are one-way
delays from publication: relay (to the page's ``onmessage``) and audio start.

Frame rate: the page's animation frames per second while the twin speaks (a 5 s sentence with a
new mouth shape every 80 ms), beside an empty page's rate in the same browser at the same time;
once with the page composited in software (how the tests run it) and once through SwiftShader.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from avatar.browser import chromium, wait_until
from avatar.gateway import AvatarGateway
from avatar.hub import OutFrame
from twin.actor import SessionInfo
from twin.messages import Speech, Viseme, to_json
from twin.testing import Harness

RATE = 22050
SHAPES = ("aa", "PP", "E", "ou", "SS", "oh", "FF", "ih", "kk", "RR")


def _speech(seconds: float, turn: int, step: float = 0.08) -> Speech:
    import numpy as np

    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (np.sin(2 * np.pi * 160 * t) * 0.25 * 32767).astype("<i2").tobytes()
    count = max(1, int(seconds / step))
    visemes = [Viseme(viseme=SHAPES[i % len(SHAPES)], start=i * step,
                      duration=(seconds - i * step) if i == count - 1 else step)
               for i in range(count)]
    return Speech(text="Route is clear to the next checkpoint.", index=0, final=True, pcm=pcm,
                  visemes=visemes, turn=turn)


def _figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
            "min": round(ordered[0], 1), "n": len(ordered)}


BLANK = ("<html><body><script>window.times=[];function f(t){times.push(t);"
         "requestAnimationFrame(f)}requestAnimationFrame(f)</script></body></html>")


def run_avatar_bench(*, samples: int = 30, progress: Callable[[str], None] = lambda s: None
                     ) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-bus", daemon=True)
    thread.start()
    gateway = AvatarGateway({"port": 0}, name="avatar",
                            session=SessionInfo(id="bench", secret="bench"))
    harness = Harness(gateway)

    def on_bus(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(30)

    on_bus(harness.__aenter__())
    if gateway.failed:
        raise RuntimeError(f"the gateway did not start: {gateway.failed}")
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(gateway.access.links(gateway.url)["operator"])
            wait_until(page, "window.__twinTest && window.__twinTest.state().connected", 20)
            wait_until(page, "window.__twinTest.fps(0.5) >= 10", 20)
            page.wait_for_timeout(500)
            delays: dict[str, dict[str, list[float]]] = {
                path: {"relay_ms": [], "audio_start_ms": []} for path in ("bus", "raw")}
            progress(f"{samples} speech messages each way...")
            for n in range(samples * 2):
                path = "bus" if n % 2 == 0 else "raw"
                turn = 10_000 + n
                speech = _speech(0.3, turn)
                if path == "bus":
                    on_bus(harness.send(speech, source="lipsync"))
                else:
                    _push_raw(gateway, speech)
                record = wait_until(page, f"""window.__twinTest.state().speeches
                    .find((s) => s.turn === {turn})""", 10)
                sent = record["t"] * 1000
                delays[path]["relay_ms"].append(record["receivedAt"] - sent)
                delays[path]["audio_start_ms"].append(record["startEpoch"] - sent)
                page.wait_for_timeout(450)  # let it finish: the next one must not queue behind
        frame_rates: dict[str, Any] = {}
        for name, gpu in (("software_compositing", False), ("swiftshader_compositing", True)):
            progress(f"frame rate while speaking, {name.replace('_', ' ')} (5 s)...")
            frame_rates[name] = _frame_rate(gateway, harness, on_bus, gpu_compositing=gpu)
    finally:
        on_bus(harness.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    bus, raw = delays["bus"], delays["raw"]
    return {
        "speech_to_page": {
            "through_bus": {key: _figures(values) for key, values in bus.items()},
            "raw_websocket_baseline": {key: _figures(values) for key, values in raw.items()},
            "bus_overhead_p50_ms": round(statistics.median(bus["relay_ms"])
                                         - statistics.median(raw["relay_ms"]), 1),
            "note": "one-way from publication; audio start includes the page's 10 ms "
                    "scheduling lead; baseline = same message put straight on the socket",
        },
        "frame_rate_while_speaking": frame_rates,
        "samples": samples,
    }


def _frame_rate(gateway: AvatarGateway, harness: Harness, on_bus: Callable[[Any], Any], *,
                gpu_compositing: bool) -> dict[str, Any]:
    """Frames per second of the page during a 5 s sentence, and of an empty page meanwhile."""
    with chromium(gpu_compositing=gpu_compositing) as browser:
        blank = browser.new_page()
        blank.set_content(BLANK)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(gateway.access.links(gateway.url)["operator"])
        wait_until(page, "window.__twinTest && window.__twinTest.state().connected", 20)
        wait_until(page, "window.__twinTest.fps(0.5) >= 5", 20)
        page.wait_for_timeout(1000)
        turn = 20_000 + int(gpu_compositing)
        on_bus(harness.send(_speech(5.0, turn), source="lipsync"))
        wait_until(page, f"""window.__twinTest.state().speeches
            .find((s) => s.turn === {turn} && s.startedAt)""", 10)
        page.wait_for_timeout(5200)
        frames = [f for f in page.evaluate("window.__twinTest.frames()") if f["turn"] == turn]
        now = blank.evaluate("performance.now()")
        blank_times = [t for t in blank.evaluate("window.times") if t >= now - 5200]
    walls = [f["wall"] for f in frames]
    dt = sorted(f["dt"] for f in frames)
    return {
        "page_fps": _rate(walls),
        "frame_ms_p95": round(dt[min(len(dt) - 1, round(0.95 * (len(dt) - 1)))], 1) if dt
        else None,
        "empty_page_fps_baseline": _rate(blank_times),
    }


def _rate(times_ms: list[float]) -> float:
    span = (times_ms[-1] - times_ms[0]) / 1000 if len(times_ms) > 1 else 0.0
    return round((len(times_ms) - 1) / span, 1) if span else 0.0


def _push_raw(gateway: AvatarGateway, speech: Speech) -> None:
    """The baseline: stamp, encode and queue the message for the pages on the server loop."""
    loop = gateway._server_loop
    assert loop is not None
    stamped = msgspec.structs.replace(speech, t=time.time(), source="raw")
    text = to_json(stamped).decode()
    loop.call_soon_threadsafe(gateway.hub.broadcast, OutFrame(text, "speech", essential=True))
