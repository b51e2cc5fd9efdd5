"""The conversation context (smoothing, shifts, trend) on scripted sequences, and the voice's
per-operator baseline normalisation."""

from __future__ import annotations

import math

import pytest

from actors.emotion.context import ContextSettings, ConversationContext, Observation, slope
from actors.emotion.labels import valence_arousal
from actors.emotion.voice import PRIORS, SpeakerBaseline
from twin.messages import EMOTION_LABELS

pytestmark = pytest.mark.unit


def said(label: str, confidence: float, turn: int, text: str = "", twin: str = "",
         mass: float = 0.8) -> Observation:
    rest = (1 - mass) / (len(EMOTION_LABELS) - 1)
    probabilities = {k: (mass if k == label else rest) for k in EMOTION_LABELS}
    valence, arousal = valence_arousal(probabilities)
    return Observation(probabilities=probabilities, valence=valence, arousal=arousal,
                       confidence=confidence, turn=turn, text=text or f"utterance {turn}",
                       twin_before=twin, words=6)


def test_a_shift_names_the_utterance_and_the_twins_line_before_it() -> None:
    context = ConversationContext()
    script = [
        said("neutral", 0.7, 1, "Checkpoint two reached.", "Report when at checkpoint two."),
        said("neutral", 0.7, 2, "Moving on.", "Roger."),
        said("neutral", 0.2, 3, "Hm.", "Wait."),  # weak: moves the state little
        said("fearful", 0.8, 4, "I'm scared, there is a wire across the road!",
             "The route ahead is reported clear."),
        said("fearful", 0.8, 5, "We are pulling back now.", "Hold your position."),
    ]
    states = [context.update(o) for o in script]
    shifts = [s for s in states if s is not None and s.shift is not None]
    assert len(shifts) == 1
    shift = shifts[0]
    assert shift.shift == "neutral->fearful"
    assert shift.shift_turn == 4
    assert shift.shift_utterance == "I'm scared, there is a wire across the road!"
    assert shift.shift_twin_utterance == "The route ahead is reported clear."
    # smoothing: the state crosses over on turn 5, but turn 4 is what moved it
    assert shift.label == "fearful" and shift.turn == 5
    assert shift.stress > 0.3  # fear: aroused, negative
    final = context.update(said("fearful", 0.8, 6))
    assert final is None or final.shift is None  # still fearful: no new shift


def test_a_weak_blip_does_not_shift_and_smoothing_follows_confidence() -> None:
    context = ConversationContext()
    context.update(said("happy", 0.9, 1))
    before = context.probabilities
    assert before is not None
    state = context.update(said("angry", 0.1, 2))
    assert context.label == "happy"
    assert state is None or state.shift is None
    after = context.probabilities
    assert after is not None
    # the step is alpha x confidence = 0.06 of the way to the new estimate
    assert after["angry"] == pytest.approx(before["angry"] + 0.06 * (0.8 - before["angry"]),
                                           abs=1e-6)


def test_the_first_estimate_is_published_and_small_changes_are_not() -> None:
    context = ConversationContext(ContextSettings(min_change=0.05))
    first = context.update(said("neutral", 0.5, 1))
    assert first is not None and first.label == "neutral" and first.shift is None
    assert context.update(said("neutral", 0.5, 2)) is None  # nothing moved


def test_trend_worsening_then_improving() -> None:
    context = ConversationContext(ContextSettings(trend_window=3))
    trends = []
    for turn, label in enumerate(["happy", "neutral", "sad", "fearful", "fearful"], start=1):
        context.update(said(label, 0.9, turn))
        trends.append(context.trend)
    assert trends[-1] == "worsening"
    for turn, label in enumerate(["neutral", "happy", "happy"], start=10):
        context.update(said(label, 0.9, turn))
    assert context.trend == "improving"


def test_nan_observations_do_not_break_the_context() -> None:
    context = ConversationContext()
    state = context.update(Observation(probabilities={"happy": math.nan}, valence=math.nan,
                                       arousal=math.inf, confidence=math.nan))
    assert state is not None
    assert all(math.isfinite(v) for v in (state.valence, state.arousal, state.confidence,
                                          state.stress, state.engagement))


def test_slope() -> None:
    assert slope([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert slope([5.0]) == 0.0


# ---------------------------------------------------------------------------- voice baseline


def test_a_naturally_loud_speaker_is_loud_only_at_first() -> None:
    baseline = SpeakerBaseline(prior_weight=3.0)
    loud = {"energy_db": -14.0, "pitch_st": 6.0}
    first = baseline.z_scores(loud)["energy_db"]
    assert first == pytest.approx((-14.0 - PRIORS["energy_db"][0]) / PRIORS["energy_db"][1])
    for n in range(20):
        baseline.add({"energy_db": -14.0 + (n % 3 - 1), "pitch_st": 6.0})
    settled = baseline.z_scores(loud)["energy_db"]
    assert first > 1.5
    assert abs(settled) < 0.5  # their usual level is no longer remarkable
    # and what is loud for them still is
    assert baseline.z_scores({"energy_db": -6.0})["energy_db"] > 2.0
    assert baseline.maturity > 0.85


def test_baseline_ignores_nan_and_unknown_features() -> None:
    baseline = SpeakerBaseline()
    baseline.add({"energy_db": math.nan, "colour": 3.0})
    assert baseline.stats == {}
    assert baseline.z_scores({"energy_db": math.nan, "colour": 1.0}) == {}
