"""``twin bench emotion``: how long an emotion estimate takes after the final transcript, beside
the raw estimator calls of the same run, and the eval figures on the labelled fixture set.

- through the actor: an ``EmotionModeler`` on a ``LocalBus`` (``twin.testing.Harness``) is fed,
  per utterance, the real recording's 100 ms ``AudioFrame``s (``tests/fixtures/speech``), real
  face observations (mediapipe on ``tests/fixtures/video/WolfgangLanger_Pexels.mp4``, re-timed
  onto the utterance's span) and then the final ``Transcript``; latency = the estimate's
  publication time - the transcript's;
- baseline: the same three estimators and the fusion called directly on the same inputs
  (what the actor cannot do faster than), timed with ``time.perf_counter``, utterance by
  utterance just before the actor gets them (so both see the same load);
- eval: ``twin.evaluation`` on ``tests/fixtures/emotion/mission_utterances.csv``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FRAME_S = 0.1


def _fixtures() -> Path:
    import twin

    folder = Path(twin.__file__).resolve().parents[1] / "tests" / "fixtures"
    if not (folder / "emotion").is_dir():
        raise FileNotFoundError(f"{folder}: no emotion fixtures; `twin bench emotion` runs from "
                                "a source checkout of twin, where tests/fixtures holds them")
    return folder


def _ms(values: list[float]) -> dict[str, float]:
    from twin.bench import _percentile

    if not values:
        return {"n": 0}
    return {"p50": round(_percentile(values, 0.5), 1), "p95": round(_percentile(values, 0.95), 1),
            "mean": round(sum(values) / len(values), 1), "n": len(values)}


def _turn(turn: int) -> Callable[[Any], bool]:
    return lambda message: bool(message.turn == turn)


def run_emotion_bench(repeats: int = 3) -> dict[str, Any]:
    """Run the bench (see the module doc); figures as a dict."""
    import msgspec
    import numpy as np

    from actors.emotion.face import FaceEstimator
    from actors.emotion.fusion import fuse
    from actors.emotion.modeler import EmotionModeler
    from actors.emotion.text import LexicalTextEstimator, word_count
    from actors.emotion.voice import ProsodyVoiceEstimator
    from twin.bench import load_speech_clips, speech_fixtures
    from twin.evaluation import _video_observations, evaluate, load_samples
    from twin.messages import AudioFrame, EmotionEstimate, Transcript
    from twin.testing import Harness

    fixtures = _fixtures()
    clips = load_speech_clips(speech_fixtures())
    print("bench emotion: face features of the fixture video", file=sys.stderr)
    video = _video_observations(fixtures / "video" / "WolfgangLanger_Pexels.mp4", fps=10.0)

    # the utterances, laid one after another on one stream with 1 s between them
    plan: list[tuple[Any, float, float, list[Any]]] = []
    t = 0.5
    for _ in range(repeats):
        for clip in clips:
            start, end = t, t + clip.seconds
            frames = [msgspec.structs.replace(o, frame_t=start + o.frame_t) for o in video
                      if o.frame_t < clip.seconds]
            plan.append((clip, start, end, frames))
            t = end + 1.0

    actor_ms: list[float] = []
    raw: dict[str, list[float]] = {"text": [], "voice": [], "face": [], "fusion": [], "total": []}
    modeler = EmotionModeler(name="emotion")
    print("bench emotion: loading the estimators (pYIN compiles on its very first use)",
          file=sys.stderr)
    text, voice, face = LexicalTextEstimator(), ProsodyVoiceEstimator(), FaceEstimator()
    voice.warm()

    def raw_calls(clip: Any, start: float, end: float, frames: list[Any]) -> None:
        audio = (clip.samples.astype(np.float32) / 32768.0).astype(np.float32)
        t0 = time.perf_counter()
        estimates = [text.estimate(clip.text)]
        t1 = time.perf_counter()
        estimates.append(voice.estimate(audio, words=word_count(clip.text),
                                        word_span=clip.seconds))
        t2 = time.perf_counter()
        estimates.append(face.estimate(frames, start, end))
        t3 = time.perf_counter()
        fuse(estimates)
        t4 = time.perf_counter()
        for name, value in (("text", t1 - t0), ("voice", t2 - t1), ("face", t3 - t2),
                            ("fusion", t4 - t3), ("total", t4 - t0)):
            raw[name].append(value * 1000)

    async def run() -> None:
        # Per utterance: the raw calls, then the same inputs through the actor (interleaved,
        # so both see the same load on the machine).
        async with Harness(modeler) as harness:
            for turn, (clip, start, end, frames) in enumerate(plan, start=1):
                raw_calls(clip, start, end, frames)
                pcm = clip.samples.astype("<i2")
                step = int(FRAME_S * 16000)
                for i in range(0, len(pcm), step):
                    await harness.send(AudioFrame(pcm=pcm[i:i + step].tobytes(),
                                                  start=start + i / 16000), source="audio")
                for frame in frames:
                    await harness.send(frame, source="behavior")
                await asyncio.sleep(0.05)  # the actor has taken the audio and frames in
                await harness.send(Transcript(text=clip.text, final=True, confidence=0.9,
                                              start=start, end=end, turn=turn), source="speech")
                transcript_t = time.time()
                estimate = await harness.wait_for(EmotionEstimate, _turn(turn), timeout=120)
                actor_ms.append((estimate.t - transcript_t) * 1000)

    print("bench emotion: the raw estimators and the EmotionModeler, utterance by utterance",
          file=sys.stderr)
    started = time.perf_counter()
    asyncio.run(run())
    actor_total = time.perf_counter() - started

    print("bench emotion: eval on the labelled mission utterances", file=sys.stderr)
    data = fixtures / "emotion" / "mission_utterances.csv"
    report = evaluate(load_samples(data), data=str(data))
    return {
        "estimate_after_final_transcript_ms": {
            "emotion_actor": _ms(actor_ms),
            "raw_estimators": {name: _ms(values) for name, values in raw.items()},
        },
        "eval_mission_utterances": report.to_dict(),
        "setup": {"utterances": len(plan), "clips": len(clips), "repeats": repeats,
                  "audio_s_per_utterance": round(sum(c.seconds for c in clips) / len(clips), 2),
                  "run_s": round(actor_total, 1), "cores": os.cpu_count()},
    }
