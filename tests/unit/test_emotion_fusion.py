"""Gated fusion arithmetic and the label helpers, on constructed estimates."""

from __future__ import annotations

import math

import pytest

from actors.emotion.fusion import fuse, gate_weights
from actors.emotion.labels import (
    from_valence_arousal,
    js_agreement,
    normalise,
    peakedness,
    top,
    unavailable,
    valence_arousal,
)
from twin.messages import EMOTION_LABELS, ModalityEstimate

pytestmark = pytest.mark.unit


def peaked(label: str, mass: float = 0.8) -> dict[str, float]:
    rest = (1 - mass) / (len(EMOTION_LABELS) - 1)
    return {k: (mass if k == label else rest) for k in EMOTION_LABELS}


def estimate(modality: str, label: str, confidence: float, mass: float = 0.8) -> ModalityEstimate:
    probabilities = peaked(label, mass)
    valence, arousal = valence_arousal(probabilities)
    return ModalityEstimate(modality=modality,  # type: ignore[arg-type]
                            probabilities=probabilities, valence=valence, arousal=arousal,
                            confidence=confidence)


PRIORS = {"text": 1.0, "voice": 1.0, "face": 1.0}


def test_one_confident_modality_dominates() -> None:
    text, voice = estimate("text", "happy", 0.9), estimate("voice", "sad", 0.1)
    fused = fuse([text, voice], PRIORS)
    assert fused.label == "happy"
    weights = {m.modality: m.weight for m in fused.modalities}
    assert weights["text"] == pytest.approx(0.9, abs=1e-3)
    assert weights["voice"] == pytest.approx(0.1, abs=1e-3)
    assert fused.probabilities["happy"] > 0.7
    assert fused.valence == pytest.approx(0.9 * text.valence + 0.1 * voice.valence)
    assert fused.valence > 0.4


def test_agreement_raises_and_conflict_lowers_confidence() -> None:
    alone = fuse([estimate("text", "angry", 0.6)], PRIORS)
    agree = fuse([estimate("text", "angry", 0.6), estimate("face", "angry", 0.6)], PRIORS)
    conflict = fuse([estimate("text", "angry", 0.6), estimate("face", "happy", 0.6)], PRIORS)
    assert alone.agreement is None
    assert agree.agreement == pytest.approx(1.0)
    assert conflict.agreement is not None and conflict.agreement < 0.5
    assert agree.confidence > alone.confidence > conflict.confidence
    assert agree.confidence > 0.6  # above the modalities' own
    assert conflict.confidence < 0.6


def test_an_absent_modality_has_zero_weight() -> None:
    face = ModalityEstimate(modality="face", probabilities=peaked("sad", 1.0), valence=-1,
                            arousal=-1, confidence=1.0, available=False)
    with_absent = fuse([estimate("text", "fearful", 0.5), face], PRIORS)
    without = fuse([estimate("text", "fearful", 0.5)], PRIORS)
    assert [m.weight for m in with_absent.modalities] == [1.0, 0.0]
    assert with_absent.probabilities == pytest.approx(without.probabilities)
    assert with_absent.confidence == pytest.approx(without.confidence)
    assert with_absent.label == "fearful"


def test_the_prior_gates_a_modality() -> None:
    weights = gate_weights([estimate("text", "happy", 0.5), estimate("voice", "happy", 0.5)],
                           {"text": 1.0, "voice": 0.5})
    assert weights == pytest.approx([2 / 3, 1 / 3])


def test_nothing_available_is_neutral_with_no_confidence() -> None:
    fused = fuse([unavailable("text", "empty"), unavailable("voice", "silence"),
                  unavailable("face", "no face")])
    assert fused.label == "neutral" and fused.confidence == 0.0
    assert all(m.weight == 0 and not m.available for m in fused.modalities)


def test_nan_and_garbage_inputs_give_a_finite_estimate() -> None:
    bad = ModalityEstimate(modality="voice", probabilities={"happy": math.nan, "bogus": 3.0},
                           valence=math.nan, arousal=math.inf, confidence=math.nan)
    fused = fuse([estimate("text", "sad", 0.7), bad], PRIORS)
    assert fused.label == "sad"
    assert all(math.isfinite(v) for v in (fused.valence, fused.arousal, fused.confidence))
    assert fused.modalities[1].weight == 0.0


def test_label_helpers() -> None:
    assert normalise({"happy": math.nan, "sad": -1}) == pytest.approx(
        {k: 1 / 7 for k in EMOTION_LABELS})
    assert peakedness(peaked("happy", 1.0)) == pytest.approx(1.0)
    assert peakedness(normalise({})) == pytest.approx(0.0)
    assert js_agreement(peaked("happy", 1.0), peaked("sad", 1.0)) == pytest.approx(0.0)
    assert top(from_valence_arousal(0.8, 0.45)) == "happy"
    assert top(from_valence_arousal(0.0, 0.0)) == "neutral"
    assert top(from_valence_arousal(-0.7, -0.45)) == "sad"
    valence, arousal = valence_arousal(peaked("angry", 1.0))
    assert valence < -0.5 and arousal > 0.5


def test_estimates_and_states_of_older_logs_still_decode() -> None:
    import msgspec

    from twin.messages import EmotionEstimate, OperatorState, decode

    old_state = {"type": "operator_state", "label": "fearful", "valence": -0.5, "arousal": 0.6,
                 "confidence": 0.7, "trend": "worsening", "shift": "neutral->fearful",
                 "workload": 0.4}
    old_estimate = {"type": "emotion_estimate", "label": "happy", "probabilities": {"happy": 1.0},
                    "valence": 0.8, "arousal": 0.4, "confidence": 0.6,
                    "modalities": [{"modality": "text", "probabilities": {"happy": 1.0},
                                    "valence": 0.8, "arousal": 0.4, "confidence": 0.6}]}
    state = decode(msgspec.msgpack.encode(old_state))
    estimate = decode(msgspec.msgpack.encode(old_estimate))
    assert isinstance(state, OperatorState) and state.stress == 0.0
    assert state.shift_utterance == "" and state.shift_turn is None
    assert isinstance(estimate, EmotionEstimate) and estimate.text == ""
    assert estimate.agreement is None
    assert estimate.modalities[0].features == {} and estimate.modalities[0].note == ""
