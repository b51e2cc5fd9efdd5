"""``twin bench turn``'s reading of a session log: each clip's stages from the wall time of its
last speech sample (its frame's arrival less the rest of the frame), false cut-offs and missed
turns."""

from __future__ import annotations

import msgspec
import pytest

from twin.bench_turn import turn_stages
from twin.messages import (
    AudioFrame,
    Message,
    Metric,
    Speech,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinDecision,
    TwinUtterance,
)

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0


def at(wall: float, message: Message) -> Message:
    return msgspec.structs.replace(message, t=T0 + wall)


def frames(seconds: float) -> list[Message]:
    """100 ms frames, each arriving when its last sample is due (stream time = wall time)."""
    return [at(round((n + 1) * 0.1, 3), AudioFrame(pcm=b"", start=round(n * 0.1, 3)))
            for n in range(round(seconds * 10))]


def test_stages_count_from_the_clips_last_speech_sample() -> None:
    messages = [
        *frames(12.0),
        # clip 0: voice 1.0 .. 2.45 s, one turn, answered
        at(1.3, SpeechStarted(at=1.0, turn=1)),
        at(3.0, SpeechEnded(at=2.5, duration=1.5, turn=1, voice_end=T0 + 2.5)),
        at(3.1, Transcript(text="go forward ten meters", final=True, turn=1)),
        at(3.12, TwinDecision(trigger="question", intent="answer", style="brief", hedge=False,
                              confidence=0.8, turn=1)),
        at(3.6, TwinUtterance(text="Roger.", index=0, final=False, turn=1)),
        at(3.6, Metric(name="dialogue_first_sentence_ms", value=500, turn=1,
                       labels={"source": "llm"})),
        at(3.9, Speech(text="Roger.", index=0, final=False, pcm=b"", turn=1)),
        # clip 1: voice 5.0 .. 7.0 s, heard as two turns (a false cut-off) that went on as one
        at(5.3, SpeechStarted(at=5.0, turn=2)),
        at(6.2, SpeechEnded(at=5.7, duration=0.7, turn=2)),
        at(6.4, SpeechStarted(at=6.1, turn=3, continues=2)),
        at(7.5, SpeechEnded(at=7.0, duration=0.9, turn=3)),
        at(7.6, Transcript(text="the rest", final=True, turn=3)),
        # clip 2: voice 9.0 .. 10.0 s, never heard (a missed turn)
    ]
    rows = turn_stages(messages, [(1.0, 2.45), (5.0, 7.0), (9.0, 10.0)])
    first = rows[0]
    assert first["turns"] == [1] and first["heard"] == "go forward ten meters"
    assert first["ms"] == pytest.approx({"turn_end": 550.0, "final_transcript": 650.0,
                                         "decision": 670.0, "first_sentence": 1150.0,
                                         "first_audio": 1450.0}, abs=0.5)
    assert first["vad_voice_end_ms"] == pytest.approx(50.0, abs=0.5)
    assert first["answered_by"] == "llm" and not first["rejoined"]
    assert rows[1]["turns"] == [2, 3]  # two turns in one clip
    assert rows[1]["rejoined"] and not rows[1]["spoke_to_a_part"]
    assert rows[1]["ms"]["first_audio"] is None  # no reply
    assert rows[2]["turns"] == [] and "ms" not in rows[2]
