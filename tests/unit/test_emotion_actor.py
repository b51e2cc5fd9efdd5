"""The EmotionModeler on a LocalBus (twin.testing.Harness), with the face estimator only (pure
Python; the text and voice estimators run on real models in tests/models/test_emotion.py):
one estimate per final transcript with every modality listed, the operator state and its
shifts, the audio buffer, and bad input that must not stop the actor."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest

from actors.emotion.modeler import EmotionModeler
from twin.messages import (
    ActorError,
    AudioFrame,
    BehaviorObservation,
    EmotionEstimate,
    Metric,
    OperatorState,
    SpeechEnded,
    Transcript,
    TwinUtterance,
)
from twin.testing import Harness

pytestmark = pytest.mark.unit

SMILE = {"mouthSmileLeft": 0.85, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.4,
         "cheekSquintRight": 0.4}
SCOWL = {"browDownLeft": 0.8, "browDownRight": 0.8, "mouthPressLeft": 0.6,
         "mouthPressRight": 0.6, "eyeSquintLeft": 0.5, "eyeSquintRight": 0.5}


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


def face_only() -> EmotionModeler:
    return EmotionModeler({"modalities": ["face"], "face_wait_s": 0.3}, name="emotion")


async def face(harness: Harness, blendshapes: dict[str, float], start: float,
               end: float) -> None:
    for n in range(int((end - start) * 10) + 1):
        await harness.send(BehaviorObservation(frame_t=start + n / 10, face_present=True,
                                               blendshapes=blendshapes), source="behavior")


def final(text: str, start: float, end: float, turn: int) -> Transcript:
    return Transcript(text=text, final=True, start=start, end=end, turn=turn, confidence=0.9)


def test_an_estimate_per_final_transcript_with_every_modality_listed() -> None:
    async def scenario() -> None:
        async with Harness(face_only()) as harness:
            await face(harness, SMILE, 0.0, 2.0)
            await harness.send(Transcript(text="the route", final=False, start=0.0, end=1.0,
                                          turn=1), source="speech")
            await harness.send(final("The route is clear.", 0.0, 2.0, 1), source="speech")
            estimate = await harness.wait_for(EmotionEstimate)
            state = await harness.wait_for(OperatorState)
            metric = await harness.wait_for(Metric, lambda m: m.name == "emotion_estimate_ms")
            await asyncio.sleep(0.1)
            assert len(harness.probe.messages(EmotionEstimate)) == 1  # the partial: none
            assert estimate.turn == 1 and estimate.text == "The route is clear."
            assert (estimate.start, estimate.end) == (0.0, 2.0)
            assert estimate.label == "happy"
            modalities = {m.modality: m for m in estimate.modalities}
            assert set(modalities) == {"text", "voice", "face"}
            assert not modalities["text"].available and modalities["text"].weight == 0
            assert modalities["text"].note == "not enabled"
            assert modalities["face"].available and modalities["face"].weight == 1.0
            assert modalities["face"].features["frames"] == 21
            assert state.label == "happy" and state.turn == 1 and state.shift is None
            assert metric.value >= 0 and metric.turn == 1

    run(scenario())


def test_a_shift_carries_the_utterance_and_the_twins_line_before_it() -> None:
    async def scenario() -> None:
        async with Harness(face_only()) as harness:
            script = [(SMILE, "All good here.", "Report your status."),
                      (SCOWL, "That is not what I ordered!", "The convoy has left without you."),
                      (SCOWL, "Get them back now.", "Understood."),
                      (SCOWL, "Now!", "Working on it.")]
            for turn, (shape, said, twin) in enumerate(script, start=1):
                start = turn * 10.0
                await harness.send(TwinUtterance(text=twin, index=0, final=True,
                                                 turn=1_000_000 + turn), source="dialogue")
                await face(harness, shape, start, start + 2)
                await harness.send(final(said, start, start + 2, turn), source="speech")
                await harness.wait_for(EmotionEstimate, lambda m, turn=turn: m.turn == turn)
            shift = await harness.wait_for(OperatorState, lambda m: m.shift is not None)
            assert shift.shift == "happy->angry"
            assert shift.shift_utterance == "That is not what I ordered!"
            assert shift.shift_twin_utterance == "The convoy has left without you."
            assert shift.shift_turn == 2

    run(scenario())


def test_a_lagging_video_is_waited_for_but_not_forever() -> None:
    async def scenario() -> None:
        actor = EmotionModeler({"modalities": ["face"], "face_wait_s": 0.5}, name="emotion")
        async with Harness(actor) as harness:
            await face(harness, SMILE, 0.0, 1.0)  # the video is live, but at 1 s of 3
            await harness.send(final("Route clear.", 0.0, 3.0, 1), source="speech")
            await asyncio.sleep(0.1)
            assert harness.probe.messages(EmotionEstimate) == []  # waiting for the frames
            await face(harness, SMILE, 1.1, 3.0)
            estimate = await harness.wait_for(EmotionEstimate)
            face_estimate = next(m for m in estimate.modalities if m.modality == "face")
            # it went on once the video was within a frame or two of the end (3.0 s)
            assert face_estimate.features["frames"] >= 28
            # the video stops short of the next utterance: estimated after face_wait_s anyway
            await harness.send(final("Moving on.", 2.0, 9.0, 2), source="speech")
            late = await harness.wait_for(EmotionEstimate, lambda m: m.turn == 2, timeout=3)
            assert late.t - estimate.t < 2.0

    run(scenario())


def test_the_audio_buffer_returns_the_span() -> None:
    async def scenario() -> None:
        actor = face_only()
        async with Harness(actor) as harness:
            ramp = np.arange(16000 * 3, dtype=np.int16)  # 3 s, sample n = n
            for i in range(0, len(ramp), 1600):
                await harness.send(AudioFrame(pcm=ramp[i:i + 1600].tobytes(), start=i / 16000),
                                   source="audio")
            await harness.send(AudioFrame(pcm=bytes(3200), start=0.0, stream="twin"),
                               source="audio")  # another stream: not kept
            await asyncio.sleep(0.1)
            span = actor.audio_between(0.95, 1.55)
            assert len(span) == int(0.6 * 16000)
            assert span[0] * 32768 == pytest.approx(0.95 * 16000)
            assert actor.health()["audio_s"] == 3.0

    run(scenario())


def test_bad_input_gives_a_weaker_estimate_and_the_actor_carries_on() -> None:
    async def scenario() -> None:
        actor = face_only()
        async with Harness(actor) as harness:
            await harness.send(BehaviorObservation(frame_t=math.nan, face_present=True,
                                                   blendshapes={"jawOpen": math.nan}),
                               source="behavior")
            await harness.send(AudioFrame(pcm=b"\x01", start=0.0), source="audio")  # odd size
            # no span in the transcript: the voice span of SpeechEnded is used
            await face(harness, SMILE, 4.0, 6.0)
            await harness.send(SpeechEnded(at=6.0, duration=2.0), source="speech")
            await harness.send(final("", 0.0, -1.0, 1), source="speech")
            estimate = await harness.wait_for(EmotionEstimate)
            assert (estimate.start, estimate.end) == (4.0, 6.0)
            assert estimate.label == "happy"
            # nothing at all: neutral, no confidence, still published
            await harness.send(final("", 100.0, 101.0, 2), source="speech")
            empty = await harness.wait_for(EmotionEstimate, lambda m: m.turn == 2)
            assert empty.confidence == 0.0 and empty.label == "neutral"
            assert all(not m.available for m in empty.modalities)
            assert actor.failed is None
            assert harness.probe.messages(ActorError) == []

    run(scenario())


def test_after_a_restart_the_state_and_the_voice_baseline_come_back_from_the_log() -> None:
    from twin.messages import ModalityEstimate

    def logged(label: str, turn: int) -> EmotionEstimate:
        probabilities = {label: 0.9, "neutral": 0.1}
        voice = ModalityEstimate(modality="voice", probabilities=probabilities, valence=0.0,
                                 arousal=0.0, confidence=0.4, weight=0.3,
                                 features={"energy_db": -20.0, "z_energy_db": 1.0})
        return EmotionEstimate(label=label, probabilities=probabilities, valence=-0.5,
                               arousal=0.6, confidence=0.8, modalities=[voice], turn=turn,
                               text=f"line {turn}")

    async def scenario() -> None:
        actor = face_only()
        await actor.recover([logged("angry", 1), logged("angry", 2)])
        assert actor.context.label == "angry"
        assert actor._recovered_voice == [{"energy_db": -20.0}, {"energy_db": -20.0}]

    run(scenario())


def test_an_estimator_that_cannot_load_is_listed_and_the_rest_carry_on(tmp_path: Any) -> None:
    async def scenario() -> None:
        settings = {"modalities": ["text", "face"],
                    "text": {"backend": "transformers", "model": str(tmp_path / "no-model")}}
        actor = EmotionModeler(settings, name="emotion")
        async with Harness(actor) as harness:
            error = await harness.wait_for(ActorError)
            assert error.recoverable and "no-model" in error.error
            await face(harness, SMILE, 0.0, 2.0)
            await harness.send(final("All good.", 0.0, 2.0, 1), source="speech")
            estimate = await harness.wait_for(EmotionEstimate)
            by = {m.modality: m for m in estimate.modalities}
            assert not by["text"].available and by["text"].note.startswith("cannot load")
            assert by["face"].available and estimate.label == "happy"
            assert actor.failed is None

    run(scenario())
