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
import contextlib
import json
import logging
import math
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from twin.actor import Actor, SessionInfo
from twin.bus import RayBus, routes_for
from twin.config import BusSettings
from twin.messages import AudioFrame, Message, SpeechStarted
from twin.testing import FRAME_S

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

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


# ---------------------------------------------------------------------------- asr

LONG_GAP_S = 1.0  # silence between (and after) the clips of the long recording
LEAD_IN_S = 0.5  # silence before a short utterance
TAIL_S = 1.5  # silence after it, so the turn ends


@dataclass(frozen=True)
class SpeechClip:
    """A fixture recording: 16 kHz mono int16 samples, its transcript, and (when measured) the
    reference voice boundaries in seconds into the clip."""

    name: str
    samples: npt.NDArray[np.int16]
    text: str
    voice: tuple[float, float] | None

    @property
    def seconds(self) -> float:
        return len(self.samples) / 16000


def speech_fixtures() -> Path:
    """The repository's ``tests/fixtures/speech`` folder; ``FileNotFoundError`` if absent."""
    import twin

    folder = Path(twin.__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
    if not (folder / "transcripts.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no speech fixtures (transcripts.json and its clips); `twin bench asr` "
            "runs from a source checkout of twin, where tests/fixtures/speech holds them")
    return folder


def load_speech_clips(folder: Path) -> list[SpeechClip]:
    """The clips listed in ``folder/transcripts.json`` (wavs of any rate; ``.raw`` is 16 kHz
    S16_LE mono), as 16 kHz mono int16."""
    import numpy as np

    from actors.audio import SAMPLE_RATE, Resampler, read_wav

    listing = json.loads((folder / "transcripts.json").read_text())["clips"]
    clips = []
    for name, entry in listing.items():
        path = folder / name
        if name.endswith(".raw"):
            samples = np.frombuffer(path.read_bytes(), "<i2").astype(np.int16)
        else:
            wav = read_wav(path)
            samples = Resampler(wav.sample_rate, wav.channels)(wav.samples, last=True)
        assert SAMPLE_RATE == 16000
        voice = entry.get("voice")
        clips.append(SpeechClip(name, samples, str(entry["text"]),
                                (float(voice[0]), float(voice[1])) if voice else None))
    return clips


CARDS = Path("/usr/share/pocketsphinx/test/data/cards")


def held_out_speech_clips(folder: Path = CARDS) -> list[SpeechClip]:
    """Short real commands nothing was tuned on: Debian's ``pocketsphinx-testdata`` card names
    ("ten of clubs", "five five", 1-4 s, 8 kHz recordings), with the package's own transcripts
    (``cards.transcription``); none when the package is not installed."""
    import numpy as np

    from actors.audio import Resampler, read_wav

    listing = folder / "cards.transcription"
    if not listing.is_file():
        return []
    clips = []
    for line in listing.read_text().splitlines():
        found = re.fullmatch(r"\s*<s>(.*)</s>\s*\((\w+)\)\s*", line)
        if not found:
            continue
        wav = read_wav(folder / f"{found.group(2)}.wav")
        samples = Resampler(wav.sample_rate, wav.channels)(wav.samples, last=True)
        clips.append(SpeechClip(f"pocketsphinx cards/{found.group(2)}.wav",
                                np.asarray(samples, np.int16), " ".join(found.group(1).split()),
                                None))
    return clips


def _ms_figures(values: list[float]) -> dict[str, float]:
    ms = values or [float("nan")]
    return {"p50": round(statistics.median(ms), 1), "p95": round(_percentile(ms, 0.95), 1),
            "n": len(values)}


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 of ``values`` and how many there are (``{"n": 0}`` for none: JSON-safe)."""
    if not values:
        return {"n": 0}
    return {"p50": round(_percentile(values, 0.5), 1),
            "p95": round(_percentile(values, 0.95), 1), "n": len(values)}


def _progress(text: str) -> None:
    print(f"bench asr: {text}", file=sys.stderr, flush=True)


def run_asr_bench(model: str = "whisper-tiny.en", repeats: int = 3) -> dict[str, Any]:
    """Speech recognition: the ``SpeechRecognizer`` actor on a ``LocalBus`` beside plain
    faster-whisper, on the same real recordings (``tests/fixtures/speech``) in the same run.

    - long: every clip, joined with 1 s silences (and 1 s after the last), ~33 s. Plain
      faster-whisper ``transcribe(audio, language="en", word_timestamps=True)`` with the
      recogniser's beam size
      (segments consumed) beside the actor fed the audio as 100 ms ``AudioFrame``s as fast as it
      takes them (first frame sent -> last final ``Transcript`` published). Real-time factor =
      wall time / audio seconds; word error rate against the joined reference texts.
    - short: each clip ``repeats`` times, with 0.5 s of silence before and 1.5 s after, fed in
      real time (paced 100 ms frames, as a microphone). Per turn, ``SpeechEnded`` -> final
      ``Transcript`` (publication times); per clip with reference voice boundaries, the send
      time of the clip's last voice sample (its frame goes out once its last sample is due, as
      from a microphone) -> the clip's last final ``Transcript`` (what the operator perceives:
      it includes the end-of-turn silence). The baseline is plain
      faster-whisper's ``transcribe(clip)`` wall time — what a naive pipeline still needs after
      endpointing. Word error rates are pooled over all utterances.

    Both use ``cpu_threads=2``, int8, greedy decoding; they never run at the same time.
    """
    import numpy as np

    from actors.asr import resolve_model
    from actors.audio import pcm_to_float
    from actors.speech import SpeechRecognizer, SpeechSettings
    from twin.messages import Metric, SpeechEnded
    from twin.metrics import WordErrors, word_errors
    from twin.testing import Harness, Microphone, final_transcripts

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    clips = load_speech_clips(speech_fixtures())
    held_out = held_out_speech_clips()
    settings = SpeechSettings.model_validate({"model": model})
    threads = settings.cpu_threads
    from faster_whisper import WhisperModel

    plain = WhisperModel(resolve_model(model), device="cpu", compute_type="int8",
                         cpu_threads=threads, local_files_only=True)

    def as_float(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
        return pcm_to_float(samples.astype("<i2").tobytes())

    def transcribe(samples: npt.NDArray[np.int16]) -> tuple[str, float]:
        """Plain faster-whisper's text and wall seconds (audio conversion not timed)."""
        audio = as_float(samples)
        began = time.perf_counter()
        segments, _ = plain.transcribe(audio, beam_size=_beam_size(), language="en",
                                       word_timestamps=True)
        text = " ".join(segment.text.strip() for segment in segments)
        return text, time.perf_counter() - began

    def silence(seconds: float) -> npt.NDArray[np.int16]:
        return np.zeros(round(seconds * 16000), np.int16)

    transcribe(clips[0].samples)  # warm-up (the actor warms itself up in on_start)
    actor = SpeechRecognizer(settings, name="speech")
    result: dict[str, Any] = {}

    async def measure() -> None:
        async with Harness(actor) as h:
            microphone = Microphone(h, actor)
            # ---- long recording
            parts: list[npt.NDArray[np.int16]] = []
            for clip in clips:
                parts += [clip.samples, silence(LONG_GAP_S)]
            long_audio = np.concatenate(parts)
            audio_s = len(long_audio) / 16000
            reference = " ".join(clip.text for clip in clips)
            _progress(f"long recording, {audio_s:.1f} s: plain faster-whisper")
            plain_text, plain_s = transcribe(long_audio)
            _progress("long recording: SpeechRecognizer, frames as fast as it takes them")
            turn = actor.turn
            sent = await microphone.send(long_audio, paced=False)
            heard = final_transcripts(h, turn)
            actor_s = (heard[-1].t - sent[0]) if heard else float("nan")
            actor_text = " ".join(t.text for t in heard)
            result["long"] = {
                "audio_s": round(audio_s, 2),
                "plain_faster_whisper": {
                    "seconds": round(plain_s, 3), "rtf": round(plain_s / audio_s, 4),
                    "wer": round(word_errors(reference, plain_text).rate, 4),
                    "text": plain_text},
                "speech_recognizer": {
                    "seconds": round(actor_s, 3), "rtf": round(actor_s / audio_s, 4),
                    "wer": round(word_errors(reference, actor_text).rate, 4),
                    "turns": len(heard), "text": actor_text},
            }

            # ---- short utterances, in real time
            after_end: list[float] = []
            after_voice: list[float] = []
            plain_ms: list[float] = []
            errors = {name: {"speech_recognizer": WordErrors(0, 0, 0, 0),
                             "plain_faster_whisper": WordErrors(0, 0, 0, 0)}
                      for name in ("fixtures", "held out")}
            texts: dict[str, dict[str, Any]] = {
                clip.name: {"reference": clip.text, "speech_recognizer": []}
                for clip in clips + held_out}
            first_turn = actor.turn
            held_out_names = {clip.name for clip in held_out}
            for repeat in range(repeats):
                for clip in clips + held_out:
                    tally = errors["held out" if clip.name in held_out_names else "fixtures"]
                    _progress(f"short {repeat + 1}/{repeats}: {clip.name} ({clip.seconds:.2f} s)")
                    turn = actor.turn
                    sent = await microphone.send(np.concatenate(
                        [silence(LEAD_IN_S), clip.samples, silence(TAIL_S)]))
                    heard = final_transcripts(h, turn)
                    ended = {e.turn: e.t for e in h.probe.messages(SpeechEnded)
                             if e.turn is not None and e.turn > turn}
                    after_end += [(t.t - ended[t.turn]) * 1000 for t in heard if t.turn in ended]
                    if clip.voice is not None and heard:
                        voice_end = LEAD_IN_S + clip.voice[1]
                        last_voiced = math.ceil(round(voice_end / FRAME_S, 6)) - 1
                        # the frame went out at its end; the voice ended inside it
                        ended_at = sent[last_voiced] - ((last_voiced + 1) * FRAME_S - voice_end)
                        after_voice.append((heard[-1].t - ended_at) * 1000)
                    heard_text = " ".join(t.text for t in heard)
                    texts[clip.name]["speech_recognizer"].append(heard_text)
                    tally["speech_recognizer"] += word_errors(clip.text, heard_text)
                    await asyncio.sleep(0.3)  # let any dropped partial decode finish
                    text, seconds = transcribe(clip.samples)
                    plain_ms.append(seconds * 1000)
                    tally["plain_faster_whisper"] += word_errors(clip.text, text)
                    texts[clip.name]["plain_faster_whisper"] = text
            speculative = [m for m in h.probe.messages(Metric)
                           if m.name == "asr_final_after_end_ms" and (m.turn or 0) > first_turn]
            result["short"] = {
                "utterances": len(clips + held_out) * repeats,
                "turns": len(after_end),
                "final_after_speech_ended_ms": _ms_figures(after_end),
                "final_after_voice_end_ms": _ms_figures(after_voice),
                "end_of_turn": settings.end_of_turn if settings.end_of_turn == "smart"
                else f"silence {settings.end_silence_ms} ms",
                "plain_faster_whisper_ms": _ms_figures(plain_ms),
                "wer": {way: round(errors["fixtures"][way].rate, 4)
                        for way in ("speech_recognizer", "plain_faster_whisper")},
                # the held-out commands (pocketsphinx-testdata's card names): nothing was
                # tuned on them
                "wer_held_out": {way: round(errors["held out"][way].rate, 4)
                                 for way in ("speech_recognizer", "plain_faster_whisper")}
                if held_out else None,
                "speculative_finals": sum(m.labels.get("speculative") == "true"
                                          for m in speculative),
                "clips_with_voice_reference": sum(clip.voice is not None for clip in clips),
                "transcripts": texts,
            }

    _progress(f"loading {model} and the VAD")
    asyncio.run(measure())
    result["setup"] = {
        "model": model, "compute_type": "int8", "beam_size": _beam_size(), "cpu_threads": threads,
        "cores": os.cpu_count(), "repeats": repeats,
        "clips": [clip.name for clip in clips + held_out],
        "frame_ms": round(FRAME_S * 1000), "speculate_ms": settings.speculate_ms,
        "aim": "final transcript <= 300 ms after end of speech for a 3 s utterance on 2 cores "
               "with tiny.en; word error rate no worse than plain faster-whisper",
    }
    return result


def _beam_size() -> int:
    """The speech recogniser's default beam, so that both paths decode alike."""
    from actors.speech import SpeechSettings

    return SpeechSettings().beam_size


# ---------------------------------------------------------------------------- dialogue

DIALOGUE_QUESTIONS = (
    "What frequency is the troop net on?",
    "What's the grid of checkpoint Birch?",
    "What is the fuel state of BULLDOG 3?",
    "Who is the medic and in which vehicle?",
    "What is the callsign of the EOD team?",
    "At what kilometre is checkpoint Cedar?",
    "What is the cordon distance for a suspected device?",
    "Where is the release point?",
)


def run_dialogue_bench(*, mission: str | None = None, repeats: int = 2) -> dict[str, Any]:
    """Decision time, time to the first sentence after a final transcript, and the model's time
    to its first sentence and tokens/s through the Dialogue actor — beside the plain chat model
    streaming the same prompts in the same run."""
    import twin
    from actors.chat import ChatSettings, PrefixCache, chat_model
    from actors.dialogue import Dialogue
    from twin.actor import SessionInfo
    from twin.config import load_mission
    from twin.conversation import speak
    from twin.messages import Metric, Transcript, TwinUtterance
    from twin.testing import Harness

    path = Path(mission) if mission else (
        Path(twin.__file__).resolve().parents[1] / "missions" / "route_clearance.yaml")
    scenario = load_mission(path)
    actor = Dialogue({"reports": False}, name="dialogue",
                     session=SessionInfo(id="bench", mission=scenario))
    figures: dict[str, list[float]] = {}
    prompts: list[list[tuple[str, str]]] = []

    async def through_actor() -> None:
        async with Harness(actor) as harness:
            turn = 0
            for _ in range(repeats):
                for question in DIALOGUE_QUESTIONS:
                    turn += 1
                    # the operator speaks it (the twin reads ahead), then the final transcript
                    await speak(harness, question, turn)
                    await harness.send(Transcript(text=question, final=True, confidence=0.95,
                                                  turn=turn), source="speech")
                    await harness.wait_for(TwinUtterance, _final_of(turn), timeout=120)
                    if actor.mind is not None and turn <= len(DIALOGUE_QUESTIONS):
                        mind = actor.mind
                        prompts.append(mind.prompt(mind.turn_message(mind.decide_reply(
                            Transcript(text=question, final=True, confidence=0.95)))))
            for metric in harness.probe.messages(Metric):
                figures.setdefault(metric.name, []).append(metric.value)

    print("bench dialogue: through the Dialogue actor", file=sys.stderr)
    asyncio.run(through_actor())
    print("bench dialogue: the plain chat model on the same prompts", file=sys.stderr)
    plain = chat_model(ChatSettings())
    if actor.mind is not None:  # the plain model starts from the same read mission
        with contextlib.suppress(Exception):
            PrefixCache().load(plain.client, actor.mind.prefix)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    plain_first: list[float] = []
    plain_rate: list[float] = []
    sentence_end = re.compile(r"[.!?]\s")
    for _ in range(repeats):
        for prompt in prompts:
            started = time.monotonic()
            first, token, count, text = None, None, 0, ""
            for chunk in plain.stream(prompt):
                count += 1
                token = token or time.monotonic()
                text += str(chunk.content)
                if first is None and sentence_end.search(text):
                    first = time.monotonic() - started
            ended = time.monotonic()
            plain_first.append((first if first is not None else ended - started) * 1000)
            if token is not None and count > 1 and ended > token:  # as it writes
                plain_rate.append((count - 1) / (ended - token))

    return {
        "dialogue_actor": {
            "decision_ms": percentiles(figures.get("dialogue_decision_ms", [])),
            "first_sentence_after_transcript_ms": percentiles(
                figures.get("dialogue_first_sentence_ms", [])),
            "llm_first_sentence_ms": percentiles(figures.get("dialogue_llm_first_sentence_ms", [])),
            "llm_first_token_ms": percentiles(figures.get("dialogue_llm_first_token_ms", [])),
            "llm_tokens_per_s": percentiles(figures.get("dialogue_llm_tokens_per_s", [])),
            "prefill_while_speaking_ms": percentiles(figures.get("dialogue_prefill_ms", [])),
            "sentences_rejected": int(sum(figures.get("dialogue_sentences_rejected", []))),
        },
        "plain_chat_model": {
            "first_sentence_ms": percentiles(plain_first),
            "tokens_per_s": percentiles(plain_rate),
        },
        "memory": {"dialogue_process_peak_rss_mb": round(rss_mb),
                   "note": "the Dialogue's process: model, its context, MiniLM, torch"},
        "setup": {"model": ChatSettings().model, "questions": len(DIALOGUE_QUESTIONS),
                  "repeats": repeats, "cores": os.cpu_count(),
                  "aim": "first sentence <= 500 ms after a final transcript on 2 cores"},
    }


def _final_of(turn: int) -> Callable[[Any], bool]:
    """Matches the last sentence of the reply to ``turn``."""
    return lambda message: bool(message.turn == turn and message.final)
