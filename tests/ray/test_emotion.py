"""Feeling in a real session on Ray: a real recording (WavSource) heard by the real recogniser,
the operator's face in a real video (BehaviorTracker), and the EmotionModeler turning the
utterance's audio, transcript and face observations into an EmotionEstimate with all three
contributions — in the session log, with the operator state after it; the turn's end carries
the true end of the voice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from twin.config import load_config, load_mission
from twin.log import LogReader
from twin.messages import EmotionEstimate, OperatorState, SpeechEnded, Transcript
from twin.runtime import Session
from twin.testing import core_config

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "speech" / "sense_and_sensibility_01_austen_64kb-0880.wav"
VIDEO = ROOT / "tests" / "fixtures" / "video" / "WolfgangLanger_Pexels.mp4"  # a face throughout


def test_an_utterance_gets_an_estimate_with_text_voice_and_face_in_the_log(
        tmp_path: Path) -> None:
    base = load_config(ROOT / "configs" / "test.yaml")
    behavior = base.actors["behavior"].model_dump(by_alias=True)
    behavior.update(enabled=True, settings={**behavior["settings"], "video": str(VIDEO),
                                            "fps_limit": 10})
    # Both streams start at 0 when their actors start: the audio and video clocks agree.
    config = core_config(
        base, tmp_path,
        operator_audio={"class": "actors.sources.WavSource", "num_cpus": 0,
                        "settings": {"path": str(SPEECH), "lead_in_s": 1.0}},
        speech=base.actors["speech"].model_dump(by_alias=True),
        behavior=behavior,
        emotion=base.actors["emotion"].model_dump(by_alias=True),
    )
    mission = load_mission(ROOT / "missions" / "route_clearance.yaml")
    session = Session(config, mission, speed=12)  # 15 s of mission after every actor is ready
    result = asyncio.run(session.run(timeout=150))

    assert not result.degraded
    with LogReader(result.log_path) as reader:
        finals = [m for m in reader.messages(types=["transcript"])
                  if isinstance(m, Transcript) and m.final]
        estimates = [m for m in reader.messages(types=["emotion_estimate"])
                     if isinstance(m, EmotionEstimate)]
        states = [m for m in reader.messages(types=["operator_state"])
                  if isinstance(m, OperatorState)]
        ended = [m for m in reader.messages(types=["speech_ended"])
                 if isinstance(m, SpeechEnded)]
    assert len(finals) == 1 and "disposed" in finals[0].text
    # the turn's anchor: the true end of the voice, before the end of the turn was decided
    # (by the end-of-turn wait), before the final transcript
    assert len(ended) == 1 and ended[0].voice_end > 0
    assert 0.05 < ended[0].t - ended[0].voice_end < 2.5  # the end-of-turn wait, at most its ceiling
    assert ended[0].t <= finals[0].t
    assert len(estimates) == 1
    estimate = estimates[0]
    assert estimate.turn == finals[0].turn and estimate.text == finals[0].text
    assert estimate.source == "emotion"
    by = {m.modality: m for m in estimate.modalities}
    for modality in ("text", "voice", "face"):
        assert by[modality].available, (modality, by[modality].note)
        assert by[modality].weight > 0, modality
    assert by["voice"].features["voiced_s"] > 1.0
    assert by["face"].features["coverage"] > 0.8
    assert sum(m.weight for m in estimate.modalities) == pytest.approx(1.0, abs=1e-3)
    assert 0 < estimate.confidence <= 1
    assert states and states[0].turn == estimate.turn
