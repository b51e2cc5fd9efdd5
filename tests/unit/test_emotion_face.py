"""The face estimator on constructed blendshapes: action-unit patterns, the expression model's
share, coverage of the utterance's span, and bad observations."""

from __future__ import annotations

import math

import pytest

from actors.emotion.face import FaceEstimator, blendshape_distribution, pattern_scores
from actors.emotion.labels import top
from twin.messages import BehaviorObservation

pytestmark = pytest.mark.unit

SMILE = {"mouthSmileLeft": 0.85, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.4,
         "cheekSquintRight": 0.4}
SCOWL = {"browDownLeft": 0.7, "browDownRight": 0.7, "mouthPressLeft": 0.5,
         "mouthPressRight": 0.5, "eyeSquintLeft": 0.4, "eyeSquintRight": 0.4}
REST = {"mouthSmileLeft": 0.05, "browDownLeft": 0.05, "jawOpen": 0.1}


def frames(blendshapes: dict[str, float], times: list[float], face: bool = True,
           expression: dict[str, float] | None = None) -> list[BehaviorObservation]:
    return [BehaviorObservation(frame_t=t, face_present=face, blendshapes=blendshapes if face
                                else {}, expression=expression or {}) for t in times]


TIMES = [n / 10 for n in range(21)]  # 0.0 .. 2.0 s at 10 fps


def test_patterns() -> None:
    assert top(blendshape_distribution(SMILE)) == "happy"
    assert top(blendshape_distribution(SCOWL)) == "angry"
    assert top(blendshape_distribution(REST)) == "neutral"
    assert pattern_scores({})["happy"] == 0.0


def test_a_smiling_span_is_happy_and_only_the_span_counts() -> None:
    observations = frames(SCOWL, [-1.0, -0.5]) + frames(SMILE, TIMES) + frames(SCOWL, [3.0])
    estimate = FaceEstimator().estimate(observations, 0.0, 2.0)
    assert estimate.available and top(estimate.probabilities) == "happy"
    assert estimate.features["frames"] == 21
    assert estimate.features["coverage"] == pytest.approx(1.0, abs=0.06)
    assert estimate.valence > 0.3


def test_coverage_lowers_confidence() -> None:
    full = FaceEstimator().estimate(frames(SMILE, TIMES), 0.0, 2.0)
    half = FaceEstimator().estimate(
        frames(SMILE, TIMES[::2]) + frames({}, TIMES[1::2], face=False), 0.0, 2.0)
    late = FaceEstimator().estimate(frames(SMILE, TIMES[15:]), 0.0, 2.0)  # video began late
    assert half.features["coverage"] == pytest.approx(11 / 21, abs=0.01)
    assert late.features["coverage"] < 0.35
    assert full.confidence > half.confidence > 0
    assert full.confidence > late.confidence > 0
    assert "face in" in late.note


def test_the_expression_model_is_mixed_in() -> None:
    sad = {"sad": 0.9, "neutral": 0.1}
    without = FaceEstimator().estimate(frames(REST, TIMES), 0.0, 2.0)
    mixed = FaceEstimator(expression_weight=0.3).estimate(frames(REST, TIMES, expression=sad),
                                                          0.0, 2.0)
    assert mixed.probabilities["sad"] == pytest.approx(
        0.7 * without.probabilities["sad"] + 0.3 * 0.9, abs=1e-3)
    assert mixed.features["expression_frames"] == 21


def test_no_frames_or_no_face_is_unavailable() -> None:
    none = FaceEstimator().estimate([], 0.0, 2.0)
    empty = FaceEstimator().estimate(frames({}, TIMES, face=False), 0.0, 2.0)
    assert not none.available and none.weight == 0 and "no video" in none.note
    assert not empty.available and "no face" in empty.note


def test_bad_observations() -> None:
    nan = frames({"mouthSmileLeft": math.nan, "mouthSmileRight": math.inf}, TIMES)
    nan_time = [BehaviorObservation(frame_t=math.nan, face_present=True, blendshapes=SMILE)]
    estimate = FaceEstimator().estimate(nan + nan_time, 0.0, 2.0)
    assert estimate.available
    assert all(math.isfinite(p) for p in estimate.probabilities.values())
    assert FaceEstimator().estimate(frames(SMILE, [1.0]), 1.0, 1.0).available  # zero span
