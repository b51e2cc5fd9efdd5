"""``twin bench bus``: how fast the bus delivers across Ray actors, beside a raw Ray actor call.

Two Ray actors — a publisher and a sink — are wired by a ``RayBus`` exactly as the runtime wires
a session. For a small message (``SpeechStarted``) and a 100 ms audio frame (``AudioFrame``,
3,200 bytes of PCM) it measures, in the same run:

- latency: publish → ``on_message`` in the sink (p50, p99), messages sent at a steady pace;
  the baseline is a raw ``sink.raw.remote(...)`` Ray call from the same publisher process,
  timed the same way (send → method running in the sink);
- throughput: messages per second delivered when the publisher sends as fast as it can; the
  baseline is the same number of raw fire-and-forget Ray calls.

Clocks: both actors run on one machine and read ``time.time()``, so one-way times compare.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from typing import Any, ClassVar

from twin.actor import Actor, SessionInfo
from twin.bus import RayBus, routes_for
from twin.config import BusSettings
from twin.messages import AudioFrame, Message, SpeechStarted

AUDIO_PCM = bytes(3200)  # 100 ms of 16 kHz 16-bit mono
RAW_CHUNK = 2000


def _message(kind: str) -> Message:
    if kind == "audio":
        return AudioFrame(pcm=AUDIO_PCM, start=0.0)
    return SpeechStarted(at=0.0)


class BenchSink(Actor):
    """Records one-way delays of bus messages and of raw calls."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (SpeechStarted, AudioFrame)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delays: list[float] = []
        self.count = 0
        self.last = 0.0

    async def on_message(self, message: Message) -> None:
        now = time.time()
        self.delays.append(now - message.t)
        self.count += 1
        self.last = now

    def raw(self, sent: float, payload: bytes) -> None:
        now = time.time()
        self.delays.append(now - sent)
        self.count += 1
        self.last = now

    def take(self) -> dict[str, Any]:
        result = {"delays": self.delays, "count": self.count, "last": self.last}
        self.delays, self.count, self.last = [], 0, 0.0
        return result


class BenchSource(Actor):
    """Publishes on the bus, or calls the sink directly, on command."""

    def __init__(self, *args: Any, sink_name: str = "", namespace: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink_name = sink_name
        self._namespace = namespace

    async def paced(self, kind: str, count: int, interval: float, raw: bool) -> None:
        sink = self._sink() if raw else None
        message = _message(kind)
        payload = AUDIO_PCM if kind == "audio" else b""
        for _ in range(count):
            if sink is not None:
                sink.raw.remote(time.time(), payload)
            else:
                await self.publish(message)
            await asyncio.sleep(interval)
        if self.bus is not None:
            await self.bus.flush()

    async def burst(self, kind: str, count: int, raw: bool) -> float:
        """Send ``count`` messages back to back; returns the time the first was sent."""
        message = _message(kind)
        payload = AUDIO_PCM if kind == "audio" else b""
        start = time.time()
        if raw:
            # fire-and-forget, in chunks: Ray warns (on the driver's stdout) past 5,000 pending
            sink = self._sink()
            for first in range(0, count, RAW_CHUNK):
                chunk = min(RAW_CHUNK, count - first)
                await asyncio.gather(*(sink.raw.remote(time.time(), payload)
                                       for _ in range(chunk)))
        else:
            for _ in range(count):
                await self.publish(message)
            assert self.bus is not None
            await self.bus.flush()
        return start

    def _sink(self) -> Any:
        import ray

        return ray.get_actor(self._sink_name, self._namespace)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_bus_bench(*, samples: int = 1000, burst: int = 20000, interval: float = 0.002,
                  settings: BusSettings | None = None) -> dict[str, Any]:
    """Measure the bus against raw Ray calls; returns the figures (see the module docstring)."""
    import ray

    settings = settings or BusSettings()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False,
                 object_store_memory=128 * 2**20, namespace="twin-bench", log_to_driver=False,
                 logging_level=logging.WARNING)
    namespace = ray.get_runtime_context().namespace
    names = {"sink": f"bench-{os.getpid()}/sink", "source": f"bench-{os.getpid()}/source"}
    bus = RayBus(routes_for({"sink": BenchSink.subscribes}), names, namespace=namespace,
                 settings=settings)
    session = SessionInfo(id="bench")
    sink: Any = ray.remote(BenchSink).options(name=names["sink"], namespace=namespace, num_cpus=0,
                                         max_concurrency=1000).remote(
        name="sink", session=session, bus=bus, inbox_capacity=settings.inbox_capacity,
        drop_when_full=False)  # measure delivery, not the drop policy
    source: Any = ray.remote(BenchSource).options(name=names["source"], namespace=namespace,
                                             num_cpus=0, max_concurrency=1000).remote(
        name="source", session=session, bus=bus, sink_name=names["sink"], namespace=namespace)
    ray.get([sink.start.remote(), source.start.remote()])
    try:
        results: dict[str, Any] = {}
        for kind, label in (("small", "small"), ("audio", "audio_100ms")):
            # warm both paths up, then alternate blocks so drift hits both alike
            for raw in (False, True):
                ray.get(source.paced.remote(kind, 50, interval, raw))
                ray.get(sink.take.remote())
            delays: dict[bool, list[float]] = {False: [], True: []}
            block = 100
            for _ in range(max(1, samples // block)):
                for raw in (False, True):
                    ray.get(source.paced.remote(kind, block, interval, raw))
                    time.sleep(0.05)
                    delays[raw].extend(ray.get(sink.take.remote())["delays"])
            rates: dict[bool, float] = {}
            for raw in (False, True):
                start = ray.get(source.burst.remote(kind, burst, raw))
                deadline = time.time() + 60
                received, last = 0, 0.0
                while received < burst and time.time() < deadline:
                    time.sleep(0.05)
                    taken: dict[str, Any] = ray.get(sink.take.remote())
                    received += taken["count"]
                    last = max(last, taken["last"])
                rates[raw] = received / max(1e-9, last - start)
            bus_fig = _figures(delays[False], rates[False])
            raw_fig = _figures(delays[True], rates[True])
            results[label] = {
                "bus": bus_fig,
                "raw_ray_call": raw_fig,
                "latency_ratio_p50": round(bus_fig["p50_ms"] / raw_fig["p50_ms"], 3),
                "latency_ratio_p99": round(bus_fig["p99_ms"] / raw_fig["p99_ms"], 3),
                "throughput_ratio": round(bus_fig["messages_per_s"] / raw_fig["messages_per_s"],
                                          3),
            }
        sink_health = ray.get(sink.health.remote())
        results["dropped"] = sink_health["inbox"]["dropped"]
        results["setup"] = {"samples": samples, "burst": burst, "interval_s": interval,
                            "cpus": os.cpu_count(), "window": settings.window,
                            "max_batch": settings.max_batch,
                            "aim": "latency p50 within 1.3x of the raw call; >= 3000 msg/s"}
        return results
    finally:
        for handle in (source, sink):
            ray.kill(handle)
        if started_here:
            ray.shutdown()


def _figures(delays: list[float], rate: float) -> dict[str, float]:
    ms = [d * 1000 for d in delays] or [float("nan")]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(_percentile(ms, 0.99), 3),
        "samples": len(delays),
        "messages_per_s": round(rate, 1),
    }


# ---------------------------------------------------------------------------- tts

TTS_REPLIES = [
    ["Copy, Bravo two.", "The route to phase line Maple is clear of obstacles.",
     "Convoy may move at 0930Z."],
    ["Roger.", "The culvert at grid 4930 7102 was checked this morning and is passable.",
     "Keep five hundred metres between vehicles."],
    ["I am not certain about the bridge.", "Verify its load class with the brigade engineer.",
     "I will report when I know more."],
    ["Understood.", "Fuel is at 40 %, enough for about 120 km.",
     "Refuel at the forward point before the next phase."],
]


def run_tts_bench(*, replies: int = 12, voice: str = "piper-joe-medium") -> dict[str, Any]:
    """Time to first audio of a reply and real-time factor: the ``LipSync`` actor on a
    ``LocalBus`` beside plain piper, on the same texts in the same run, alternating.

    - lipsync: a reply's three ``TwinUtterance`` sentences are sent at once; time to first audio
      is the first ``Speech``'s publication time minus the first utterance's; the real-time
      factor is the time until the last ``Speech`` over the reply's audio seconds.
    - plain piper: ``piper.PiperVoice.load(...).synthesize(text)`` of the reply's text; time to
      first audio is when its first sentence's audio chunk is out; real-time factor as above.
    - viseme offset: the largest |sum of viseme durations - audio duration| over every ``Speech``.
    """
    from actors.lipsync import LipSync
    from actors.voices import PiperVoice as TwinPiper
    from actors.voices import load_voice
    from twin import models
    from twin.messages import Speech, TwinUtterance
    from twin.testing import Harness

    folder = models.model_path(voice)
    onnx = sorted(folder.glob("*.onnx"))[0]
    from piper import PiperVoice as Piper

    plain = Piper.load(onnx)
    twin_voice = load_voice(voice, fallback=False)
    assert isinstance(twin_voice, TwinPiper)
    plain_ttfa: list[float] = []
    plain_rtf: list[float] = []
    actor_ttfa: list[float] = []
    actor_rtf: list[float] = []
    offsets: list[float] = []

    def run_plain(text: str) -> None:
        began = time.perf_counter()
        first: float | None = None
        samples = 0
        for chunk in plain.synthesize(text):
            if first is None:
                first = time.perf_counter() - began
            samples += len(chunk.audio_int16_bytes) // 2
        elapsed = time.perf_counter() - began
        plain_ttfa.append(first or elapsed)
        plain_rtf.append(elapsed / (samples / plain.config.sample_rate))

    async def run_actor() -> None:
        async with Harness(LipSync(voice=twin_voice)) as h:  # warms the voice up first
            for n in range(replies):
                sentences = TTS_REPLIES[n % len(TTS_REPLIES)]
                run_plain(" ".join(sentences))
                sent = time.time()  # the harness stamps the first utterance right after
                for i, text in enumerate(sentences):
                    await h.send(TwinUtterance(turn=n, text=text, index=i,
                                               final=i == len(sentences) - 1))
                def last_of_reply(s: Speech, n: int = n) -> bool:
                    return s.turn == n and s.final

                await h.wait_for(Speech, last_of_reply, timeout=60)
                speech = [s for s in h.probe.messages(Speech) if s.turn == n]
                audio = sum(len(s.pcm) / 2 / s.sample_rate for s in speech)
                actor_ttfa.append(speech[0].t - sent)
                actor_rtf.append((speech[-1].t - sent) / audio)
                for s in speech:
                    seconds = len(s.pcm) / 2 / s.sample_rate
                    offsets.append(abs(sum(v.duration for v in s.visemes) - seconds))

    warm = plain.synthesize("Ready.")
    list(warm)
    asyncio.run(run_actor())

    def figures(ttfa: list[float], rtf: list[float]) -> dict[str, float]:
        return {
            "first_audio_p50_ms": round(statistics.median(ttfa) * 1000, 1),
            "first_audio_p95_ms": round(_percentile(ttfa, 0.95) * 1000, 1),
            "rtf_p50": round(statistics.median(rtf), 4),
            "rtf_p95": round(_percentile(rtf, 0.95), 4),
        }

    lipsync_fig = figures(actor_ttfa, actor_rtf)
    plain_fig = figures(plain_ttfa, plain_rtf)
    return {
        "lipsync": lipsync_fig,
        "plain_piper": plain_fig,
        "first_audio_ratio_p50": round(lipsync_fig["first_audio_p50_ms"]
                                       / plain_fig["first_audio_p50_ms"], 3),
        "viseme_audio_offset_max_s": max(offsets),
        "setup": {"replies": replies, "sentences_per_reply": 3, "voice": voice,
                  "cpus": os.cpu_count(),
                  "aim": "first sentence's speech out <= 150 ms after its text; offset 0"},
    }
