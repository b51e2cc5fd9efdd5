"""The shared emotion labels, their place in valence/arousal space, and distribution arithmetic.

Every estimator ends in a distribution over ``EMOTION_LABELS`` (a dict label -> probability);
the helpers here clean such a distribution (NaN, negatives, missing labels), turn it into
valence and arousal, and build one from a valence/arousal point. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from twin.messages import EMOTION_LABELS, ModalityEstimate

# Where each label sits on the circumplex (valence, arousal), both in [-1, 1]; after Russell's
# circumplex and the usual placements in the affective-computing literature.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.45),
    "sad": (-0.7, -0.45),
    "angry": (-0.65, 0.75),
    "fearful": (-0.6, 0.65),
    "disgusted": (-0.7, 0.25),
    "surprised": (0.2, 0.8),
}


def finite(value: float, default: float = 0.0) -> float:
    """``value`` if it is a finite number, else ``default``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def clip(value: float, low: float = -1.0, high: float = 1.0) -> float:
    return min(high, max(low, finite(value)))


def uniform() -> dict[str, float]:
    share = 1.0 / len(EMOTION_LABELS)
    return {label: share for label in EMOTION_LABELS}


def normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """A distribution over ``EMOTION_LABELS`` from any scores: unknown labels ignored, NaN and
    negatives count as 0; all-zero gives the uniform distribution."""
    cleaned = {label: max(0.0, finite(scores.get(label, 0.0))) for label in EMOTION_LABELS}
    total = sum(cleaned.values())
    if total <= 0.0:
        return uniform()
    return {label: value / total for label, value in cleaned.items()}


def top(probabilities: Mapping[str, float]) -> str:
    """The most probable label (ties: the first in ``EMOTION_LABELS``)."""
    return max(EMOTION_LABELS, key=lambda label: probabilities.get(label, 0.0))


def peakedness(probabilities: Mapping[str, float]) -> float:
    """1 - normalised entropy: 0 for the uniform distribution, 1 for a certain one."""
    values = [p for p in normalise(probabilities).values() if p > 0]
    entropy = -sum(p * math.log(p) for p in values)
    return max(0.0, 1.0 - entropy / math.log(len(EMOTION_LABELS)))


def valence_arousal(probabilities: Mapping[str, float]) -> tuple[float, float]:
    """The expected (valence, arousal) of a distribution on the circumplex."""
    dist = normalise(probabilities)
    valence = sum(p * CIRCUMPLEX[label][0] for label, p in dist.items())
    arousal = sum(p * CIRCUMPLEX[label][1] for label, p in dist.items())
    return clip(valence), clip(arousal)


def from_valence_arousal(valence: float, arousal: float,
                         sharpness: float = 4.0) -> dict[str, float]:
    """A distribution from a point in valence/arousal space: a softmax of minus the squared
    distance to each label's place (``sharpness`` scales how peaked it is)."""
    v, a = clip(valence), clip(arousal)
    logits = {label: -sharpness * ((v - cv) ** 2 + (a - ca) ** 2)
              for label, (cv, ca) in CIRCUMPLEX.items()}
    peak = max(logits.values())
    return normalise({label: math.exp(value - peak) for label, value in logits.items()})


def js_agreement(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """1 - the Jensen-Shannon divergence (base 2) of two distributions: 1 when they are the
    same, 0 when they share no label."""
    a, b = normalise(p), normalise(q)

    def kl(x: Mapping[str, float], m: Mapping[str, float]) -> float:
        return sum(x[k] * math.log2(x[k] / m[k]) for k in EMOTION_LABELS if x[k] > 0)

    mid: dict[str, float] = {k: (a[k] + b[k]) / 2 for k in EMOTION_LABELS}
    return max(0.0, min(1.0, 1.0 - (kl(a, mid) + kl(b, mid)) / 2))


def unavailable(modality: str, note: str) -> ModalityEstimate:
    """A modality that has nothing to say for this utterance: weight 0, ``available=False``."""
    assert modality in ("text", "voice", "face")
    return ModalityEstimate(modality=modality,  # type: ignore[arg-type]
                            probabilities=uniform(), valence=0.0, arousal=0.0, confidence=0.0,
                            weight=0.0, available=False, note=note)


def rounded(values: Mapping[str, float], digits: int = 4) -> dict[str, float]:
    return {key: round(finite(value), digits) for key, value in values.items()}
