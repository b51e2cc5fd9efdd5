"""Gated, uncertainty-aware fusion of the text, voice and face estimates of one utterance.

In: one ``ModalityEstimate`` per modality (absent ones with ``available=False``). Out: a
``Fused`` result (distribution, label, valence, arousal, confidence, agreement) and the same
modality estimates with their ``weight`` filled in, so the log shows what each contributed.

The gate: a modality's weight is its prior (how much it is trusted in general, settings) times
its own confidence for this utterance (a one-word transcript, a short or silent stretch of audio,
a span with little face all give low confidence), zero when it is unavailable; the weights are
normalised to sum to 1. The fused distribution is the weighted mean of the modalities'
distributions (a linear opinion pool: it degrades gracefully when one modality is wrong, where
a product would let one confident mistake veto the rest); valence and arousal are the weighted
means of the modalities' own.

Confidence: the weighted mean of the modalities' confidences, times how peaked the fused
distribution is (relative to the peak of the inputs), times an agreement factor. Agreement is
the weight-pair-weighted mean of 1 - Jensen-Shannon divergence between modalities; with two or
more modalities the factor is ``1 + gain * (2 * agreement - 1)`` — above 1 when they agree, below
1 when they conflict; one modality alone gets factor 1 (nothing to agree with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from actors.emotion.labels import (
    finite,
    js_agreement,
    normalise,
    peakedness,
    top,
    uniform,
)
from twin.messages import EMOTION_LABELS, ModalityEstimate

DEFAULT_PRIORS: dict[str, float] = {"text": 1.0, "voice": 0.6, "face": 0.8}


@dataclass(frozen=True)
class Fused:
    """The fused estimate of one utterance."""

    label: str
    probabilities: dict[str, float]
    valence: float
    arousal: float
    confidence: float
    agreement: float | None
    modalities: list[ModalityEstimate]


def gate_weights(estimates: Sequence[ModalityEstimate],
                 priors: Mapping[str, float] = DEFAULT_PRIORS) -> list[float]:
    """Each modality's normalised weight: prior x confidence, 0 when unavailable."""
    raw = [max(0.0, finite(priors.get(e.modality, 0.0))) * max(0.0, min(1.0, finite(e.confidence)))
           if e.available else 0.0 for e in estimates]
    total = sum(raw)
    return [w / total for w in raw] if total > 0 else [0.0 for _ in raw]


def agreement(estimates: Sequence[ModalityEstimate], weights: Sequence[float]) -> float | None:
    """Weighted mean pairwise agreement of the modalities that carry weight; ``None`` if fewer
    than two do."""
    active = [(e, w) for e, w in zip(estimates, weights, strict=True) if w > 0]
    if len(active) < 2:
        return None
    total = pairs = 0.0
    for i, (a, wa) in enumerate(active):
        for b, wb in active[i + 1:]:
            total += wa * wb * js_agreement(a.probabilities, b.probabilities)
            pairs += wa * wb
    return total / pairs if pairs > 0 else None


def fuse(estimates: Sequence[ModalityEstimate],
         priors: Mapping[str, float] = DEFAULT_PRIORS,
         agreement_gain: float = 0.3) -> Fused:
    """Fuse the modalities' estimates (see the module doc)."""
    weights = gate_weights(estimates, priors)
    weighted = [msgspec.structs.replace(e, weight=round(w, 4))
                for e, w in zip(estimates, weights, strict=True)]
    if sum(weights) <= 0:
        return Fused(label="neutral", probabilities=uniform(), valence=0.0, arousal=0.0,
                     confidence=0.0, agreement=None, modalities=weighted)
    dists = [normalise(e.probabilities) for e in estimates]
    fused = normalise({label: sum(w * d[label] for w, d in zip(weights, dists, strict=True))
                       for label in EMOTION_LABELS})
    valence = sum(w * finite(e.valence) for w, e in zip(weights, estimates, strict=True))
    arousal = sum(w * finite(e.arousal) for w, e in zip(weights, estimates, strict=True))
    base = sum(w * max(0.0, min(1.0, finite(e.confidence)))
               for w, e in zip(weights, estimates, strict=True))
    # A blend of disagreeing inputs is flatter than any of them: relative peakedness says so.
    inputs_peak = sum(w * peakedness(d) for w, d in zip(weights, dists, strict=True))
    sharpness = min(1.0, peakedness(fused) / inputs_peak) if inputs_peak > 1e-9 else 1.0
    agree = agreement(estimates, weights)
    factor = 1.0 if agree is None else 1.0 + agreement_gain * (2.0 * agree - 1.0)
    confidence = max(0.0, min(1.0, base * (0.5 + 0.5 * sharpness) * factor))
    return Fused(label=top(fused), probabilities=fused,
                 valence=max(-1.0, min(1.0, valence)), arousal=max(-1.0, min(1.0, arousal)),
                 confidence=confidence, agreement=agree, modalities=weighted)
