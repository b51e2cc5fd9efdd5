"""Face: the ``BehaviorObservation``s over one utterance's span -> a ``ModalityEstimate``.

In: the tracker's observations (``frame_t`` in video stream time; the modeler compares it with
the transcript's audio stream times: for a live session both clocks start with the session, for
a video file played with an audio file both start at 0) and the span ``[start, end]``. Out: a
``ModalityEstimate`` with the face coverage and the mean pattern scores in ``features``.

Two signals per frame with a face:

- action-unit patterns from mediapipe's blendshapes (the FACS units of Ekman's prototypes):
  happy = smile (AU12) + cheek squint (AU6); sad = mouth frown (AU15) + inner brow raise (AU1);
  angry = brow lowerer (AU4) + lid tightener (AU7) + lip press (AU24); fearful = inner brow
  raise (AU1) + upper lid raise (AU5) + lip stretch (AU20); disgusted = nose wrinkle (AU9) +
  upper lip raise (AU10); surprised = inner and outer brow raise (AU1 + AU2), upper lid raise
  (AU5) and jaw drop (AU26, weighted low: the operator is talking). Each pattern's
  score is its weighted blendshape mean less a resting level, scaled to [0, 1]; neutral is what
  the strongest pattern leaves;
- the tracker's small facial-expression model (``expression``, when present): its probabilities
  are averaged and mixed in with ``expression_weight`` (a weak model: right on happy, poor on
  anger and disgust).

Confidence grows with coverage — the share of the span's frames that had a face, times the
share of the span the observations cover — and with how peaked the distribution is. No
observations, or no face in them, make the modality unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from actors.emotion.labels import (
    finite,
    normalise,
    peakedness,
    rounded,
    unavailable,
    valence_arousal,
)
from twin.messages import EMOTION_LABELS, BehaviorObservation, ModalityEstimate

# label -> [(blendshapes averaged (left/right), weight)]
PATTERNS: dict[str, list[tuple[tuple[str, ...], float]]] = {
    "happy": [(("mouthSmileLeft", "mouthSmileRight"), 0.7),
              (("cheekSquintLeft", "cheekSquintRight"), 0.3)],
    "sad": [(("mouthFrownLeft", "mouthFrownRight"), 0.6), (("browInnerUp",), 0.4)],
    "angry": [(("browDownLeft", "browDownRight"), 0.5), (("eyeSquintLeft", "eyeSquintRight"), 0.2),
              (("mouthPressLeft", "mouthPressRight"), 0.3)],
    "fearful": [(("browInnerUp",), 0.35), (("eyeWideLeft", "eyeWideRight"), 0.4),
                (("mouthStretchLeft", "mouthStretchRight"), 0.25)],
    "disgusted": [(("noseSneerLeft", "noseSneerRight"), 0.6),
                  (("mouthUpperUpLeft", "mouthUpperUpRight"), 0.4)],
    "surprised": [(("browInnerUp",), 0.25), (("browOuterUpLeft", "browOuterUpRight"), 0.3),
                  (("eyeWideLeft", "eyeWideRight"), 0.2), (("jawOpen",), 0.25)],
}
REST = 0.1  # a pattern's score at rest (blendshapes are rarely exactly 0)
FULL = 0.5  # a pattern's score counted as fully expressed


def pattern_scores(blendshapes: Mapping[str, float]) -> dict[str, float]:
    """Each label's action-unit pattern score in [0, 1] for one frame."""
    scores = {}
    for label, parts in PATTERNS.items():
        level = 0.0
        for names, weight in parts:
            level += weight * sum(finite(blendshapes.get(n, 0.0)) for n in names) / len(names)
        scores[label] = max(0.0, min(1.0, (level - REST) / (FULL - REST)))
    return scores


def blendshape_distribution(blendshapes: Mapping[str, float]) -> dict[str, float]:
    """A distribution over the labels from one frame's blendshapes."""
    scores = pattern_scores(blendshapes)
    scores["neutral"] = max(0.05, 1.0 - 1.2 * max(scores.values()))
    return normalise(scores)


class FaceEstimator:
    """Blendshape patterns and the expression model over an utterance's span (see module doc)."""

    def __init__(self, expression_weight: float = 0.3, max_confidence: float = 0.8) -> None:
        self.expression_weight = expression_weight
        self.max_confidence = max_confidence

    def estimate(self, observations: Sequence[BehaviorObservation], start: float,
                 end: float) -> ModalityEstimate:
        span = [o for o in observations if start <= finite(o.frame_t, -1.0) <= end]
        if not span:
            return unavailable("face", "no video observations over the utterance")
        faces = [o for o in span if o.face_present and o.blendshapes]
        if not faces:
            return unavailable("face", f"no face in the {len(span)} frames over the utterance")
        times = sorted(o.frame_t for o in span)
        step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.0
        covered = min(1.0, (times[-1] - times[0] + step) / (end - start)) if end > start else 1.0
        coverage = len(faces) / len(span) * covered
        per_frame = [blendshape_distribution(o.blendshapes) for o in faces]
        blend = normalise({label: sum(d[label] for d in per_frame) / len(per_frame)
                           for label in EMOTION_LABELS})
        expressions = [normalise(o.expression) for o in faces if o.expression]
        probabilities = blend
        if expressions and self.expression_weight > 0:
            expression = {label: sum(d[label] for d in expressions) / len(expressions)
                          for label in EMOTION_LABELS}
            w = self.expression_weight
            probabilities = normalise({label: (1 - w) * blend[label] + w * expression[label]
                                       for label in EMOTION_LABELS})
        valence, arousal = valence_arousal(probabilities)
        confidence = self.max_confidence * coverage * (0.5 + 0.5 * peakedness(probabilities))
        mean_scores = {f"au_{label}": sum(pattern_scores(o.blendshapes)[label] for o in faces)
                       / len(faces) for label in PATTERNS}
        features = {"coverage": coverage, "frames": float(len(span)),
                    "face_frames": float(len(faces)),
                    "expression_frames": float(len(expressions)), **mean_scores}
        note = "" if coverage >= 0.5 else f"face in {coverage:.0%} of the span"
        return ModalityEstimate(modality="face", probabilities=rounded(probabilities),
                                valence=round(valence, 4), arousal=round(arousal, 4),
                                confidence=round(confidence, 4), features=rounded(features),
                                note=note)
