"""Voice: the prosody of one utterance's audio -> a ``ModalityEstimate``, against the operator's
own baseline.

In: the utterance's samples (16 kHz mono float32 in [-1, 1]) and, from the transcript, its word
count and the time from the first word's start to the last word's end. Out: a ``ModalityEstimate``
whose ``features`` hold the raw prosody and its z-scores against the operator's baseline.

Features (``prosody``, with librosa): pitch (pYIN, 65-400 Hz; frames under 72 Hz, at the search
floor, are creak or noise and not counted) median in semitones re 100 Hz and range (10th-90th
percentile, semitones), 64 ms frames every 20 ms; energy (frame RMS, dBFS) mean over voiced
frames; speech rate (words per second of the words' span); pause fraction (frames 30 dB under the
utterance's loudest); jitter-like (mean relative change of the pitch period between consecutive
voiced frames) and shimmer-like (the same for the RMS amplitude). pYIN is compiled by numba on
its first use on a machine (~20 s; numba caches it, later starts take ~2 s): ``warm()`` it when
the actor starts.

``SpeakerBaseline`` keeps a running mean and variance per feature for the operator; until it has
seen a few utterances it leans on population priors (shrinkage: mean = (k prior + n own) / (k + n)),
so a naturally loud or high-pitched speaker is not "angry" once the twin knows them. The z-scores
(louder, higher, wider, faster, fewer pauses than usual -> higher arousal; a tense voice - more
jitter and shimmer, a narrow range - a little lower valence) place the utterance in valence/arousal
space, and the distribution follows from the circumplex (``labels.from_valence_arousal``).
Prosody tells arousal far better than the category, so its confidence is capped at 0.6 and grows
with voiced time and with how well the baseline is known.

``TransformersVoiceEstimator`` runs any Hugging Face audio-classification emotion model instead
(local folder or registry name; a hub id only with ``allow_download``).

Silence (no voiced frame, or a level under -55 dBFS), a clip under 0.25 s, or NaN features give a
lower-confidence or unavailable estimate, never an exception.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from actors.emotion.labels import (
    from_valence_arousal,
    normalise,
    peakedness,
    rounded,
    unavailable,
    valence_arousal,
)
from actors.emotion.text import map_labels, resolve_hf_model
from twin.messages import ModalityEstimate

SAMPLE_RATE = 16000
FRAME = 1024  # 64 ms: two periods of the lowest pitch searched (65 Hz)
HOP = 320  # 20 ms
RESOLUTION = 0.2  # semitones between pYIN's pitch candidates (0.1 costs 5x the time, same medians)
FMIN, FMAX = 65.0, 400.0
FLOOR_HZ = FMIN * 1.1
SILENCE_DBFS = -55.0
MIN_SECONDS = 0.25

Audio = npt.NDArray[np.float32]

# Population priors (mean, sd) per feature: adult conversational speech, both sexes.
PRIORS: dict[str, tuple[float, float]] = {
    "pitch_st": (6.0, 6.0),  # ~140 Hz
    "pitch_range_st": (6.0, 3.0),
    "energy_db": (-26.0, 6.0),
    "speech_rate": (2.6, 0.8),  # words per second
    "pause_fraction": (0.2, 0.12),
    "jitter": (0.04, 0.03),
    "shimmer": (0.15, 0.07),
}
# How each z-score moves arousal and valence.
AROUSAL_WEIGHTS = {"energy_db": 0.35, "pitch_st": 0.25, "pitch_range_st": 0.15,
                   "speech_rate": 0.2, "pause_fraction": -0.1}
VALENCE_WEIGHTS = {"pitch_range_st": 0.15, "jitter": -0.2, "shimmer": -0.15}


def semitones(hz: npt.NDArray[np.float64] | float) -> Any:
    return 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 100.0)


@dataclass(frozen=True)
class Prosody:
    """Raw prosody of one utterance (NaN where a feature could not be measured)."""

    seconds: float
    voiced_seconds: float
    features: dict[str, float]


def pitch_track(audio: Audio, sr: int = SAMPLE_RATE) -> tuple[npt.NDArray[np.float64],
                                                             npt.NDArray[np.bool_]]:
    """pYIN fundamental frequency per 20 ms frame (NaN where unvoiced) and the voiced flags."""
    import librosa

    f0, voiced, _ = librosa.pyin(audio.astype(np.float32), fmin=FMIN, fmax=FMAX, sr=sr,
                                 frame_length=FRAME, hop_length=HOP, resolution=RESOLUTION)
    return np.asarray(f0, dtype=np.float64), np.asarray(voiced, dtype=bool)


def _relative_change(values: npt.NDArray[np.float64]) -> float:
    if len(values) < 3:
        return float("nan")
    return float(np.mean(np.abs(np.diff(values))) / np.mean(values))


def prosody(audio: Audio, words: int = 0, word_span: float = 0.0,
            sr: int = SAMPLE_RATE) -> Prosody:
    """Prosody features of one utterance (see the module doc)."""
    import librosa

    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    seconds = len(audio) / sr
    nan = float("nan")
    empty = dict.fromkeys(PRIORS, nan)
    if len(audio) < FRAME:
        return Prosody(seconds, 0.0, empty)
    rms = librosa.feature.rms(y=audio, frame_length=FRAME, hop_length=HOP, center=True)[0]
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    if float(db.max()) < SILENCE_DBFS:
        return Prosody(seconds, 0.0, empty)
    f0, voiced = pitch_track(audio, sr)
    count = min(len(f0), len(db))
    f0, voiced, db, rms = f0[:count], voiced[:count], db[:count], rms[:count]
    # Frames at pYIN's search floor are creak or noise, not a pitch: they are not counted.
    voiced &= np.isfinite(f0) & (f0 > FLOOR_HZ) & (db > SILENCE_DBFS)
    voiced_seconds = float(voiced.sum()) * HOP / sr
    features = dict(empty)
    loud = db > float(db.max()) - 30.0
    # pauses: quiet frames between the first and the last loud frame
    if loud.any():
        first, last = int(np.argmax(loud)), len(loud) - int(np.argmax(loud[::-1]))
        inner = loud[first:last]
        features["pause_fraction"] = float(1.0 - inner.mean()) if len(inner) else nan
    if words > 0 and word_span > 0.2:
        features["speech_rate"] = words / word_span
    if voiced.sum() >= 3:
        pitch = f0[voiced]
        st = semitones(pitch)
        features["pitch_st"] = float(np.median(st))
        features["pitch_range_st"] = float(np.percentile(st, 90) - np.percentile(st, 10))
        features["energy_db"] = float(np.mean(db[voiced]))
        # consecutive voiced frames only
        runs = np.flatnonzero(voiced[1:] & voiced[:-1])
        if len(runs) >= 2:
            periods = 1.0 / f0
            jitter = np.abs(periods[runs + 1] - periods[runs]) / periods[runs]
            shimmer = np.abs(rms[runs + 1] - rms[runs]) / np.maximum(rms[runs], 1e-10)
            features["jitter"] = float(np.mean(jitter))
            features["shimmer"] = float(np.mean(shimmer))
    elif bool(loud.any()):
        features["energy_db"] = float(np.mean(db[loud]))
    return Prosody(seconds, voiced_seconds, features)


@dataclass
class _Running:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float, horizon: int) -> None:
        # Welford's update; beyond ``horizon`` utterances old ones fade (n is capped).
        self.n = min(self.n + 1, horizon)
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 = max(0.0, self.m2 + delta * (value - self.mean))
        if self.n == horizon:
            self.m2 *= (horizon - 1) / horizon

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


@dataclass
class SpeakerBaseline:
    """One operator's running prosody statistics, shrunk towards population priors while few
    utterances have been seen (``prior_weight`` utterances' worth)."""

    prior_weight: float = 3.0
    horizon: int = 50
    priors: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(PRIORS))
    stats: dict[str, _Running] = field(default_factory=dict)
    utterances: int = 0

    def reference(self, name: str) -> tuple[float, float]:
        """(mean, sd) the operator's ``name`` is compared with now."""
        prior_mean, prior_sd = self.priors[name]
        own = self.stats.get(name, _Running())
        k, n = self.prior_weight, own.n
        mean = (k * prior_mean + n * own.mean) / (k + n)
        # pooled variance: prior's and own, plus the spread between their means
        variance = (k * prior_sd**2 + n * own.variance
                    + k * n / (k + n) * (own.mean - prior_mean) ** 2 * (n > 0)) / (k + n)
        return mean, max(math.sqrt(variance), 0.25 * prior_sd)

    def z_scores(self, features: Mapping[str, float]) -> dict[str, float]:
        """z-score of each finite known feature against the operator's reference."""
        scores = {}
        for name, value in features.items():
            if name in self.priors and math.isfinite(value):
                mean, sd = self.reference(name)
                scores[name] = max(-4.0, min(4.0, (value - mean) / sd))
        return scores

    def add(self, features: Mapping[str, float]) -> None:
        for name, value in features.items():
            if name in self.priors and math.isfinite(value):
                self.stats.setdefault(name, _Running()).add(float(value), self.horizon)
        self.utterances += 1

    @property
    def maturity(self) -> float:
        """0..1: how far the operator's own statistics dominate the priors."""
        return self.utterances / (self.utterances + self.prior_weight)


class VoiceEstimator(Protocol):
    def estimate(self, audio: Audio, *, words: int = 0,
                 word_span: float = 0.0) -> ModalityEstimate: ...

    def warm(self) -> None: ...


class ProsodyVoiceEstimator:
    """Prosody against the operator's baseline (see the module doc). One operator per instance."""

    def __init__(self, baseline: SpeakerBaseline | None = None, max_seconds: float = 20.0,
                 max_confidence: float = 0.6) -> None:
        self.baseline = baseline if baseline is not None else SpeakerBaseline()
        self.max_seconds = max_seconds
        self.max_confidence = max_confidence
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Compile pYIN (numba) now, not on the first utterance."""
        t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
        pitch_track((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))

    def estimate(self, audio: Audio, *, words: int = 0,
                 word_span: float = 0.0) -> ModalityEstimate:
        samples = np.asarray(audio, dtype=np.float32)
        truncated = len(samples) > self.max_seconds * SAMPLE_RATE
        if truncated:  # a very long turn: its last max_seconds (words scaled to match)
            share = self.max_seconds * SAMPLE_RATE / len(samples)
            samples = samples[-int(self.max_seconds * SAMPLE_RATE):]
            words, word_span = round(words * share), word_span * share
        if len(samples) < MIN_SECONDS * SAMPLE_RATE:
            return unavailable("voice", f"audio too short ({len(samples) / SAMPLE_RATE:.2f} s)")
        measured = prosody(samples, words, word_span)
        if measured.voiced_seconds <= 0.0:
            return unavailable("voice", "silence: no voiced audio in the utterance")
        with self._lock:
            z = self.baseline.z_scores(measured.features)
            maturity = self.baseline.maturity
            self.baseline.add(measured.features)
        arousal = math.tanh(sum(w * z.get(k, 0.0) for k, w in AROUSAL_WEIGHTS.items()))
        valence = 0.6 * math.tanh(sum(w * z.get(k, 0.0) for k, w in VALENCE_WEIGHTS.items()))
        probabilities = from_valence_arousal(valence, arousal, sharpness=3.0)
        measured_share = len(z) / len(PRIORS)
        confidence = (self.max_confidence * (0.4 + 0.6 * maturity)
                      * min(1.0, measured.voiced_seconds / 1.0) * (0.5 + 0.5 * measured_share)
                      * (0.9 if truncated else 1.0))
        features = {k: v for k, v in measured.features.items() if math.isfinite(v)}
        features.update({f"z_{k}": v for k, v in z.items()})
        features["voiced_s"] = measured.voiced_seconds
        notes = []
        if truncated:
            notes.append(f"long turn: last {self.max_seconds:.0f} s analysed")
        if maturity < 0.5:
            notes.append(f"baseline from {self.baseline.utterances - 1} utterances")
        return ModalityEstimate(modality="voice", probabilities=rounded(probabilities),
                                valence=round(valence, 4), arousal=round(arousal, 4),
                                confidence=round(confidence, 4), features=rounded(features),
                                note="; ".join(notes))


class TransformersVoiceEstimator:
    """A Hugging Face audio-classification emotion model (loaded when configured)."""

    def __init__(self, model: str, *, allow_download: bool = False,
                 max_seconds: float = 20.0) -> None:
        reference = resolve_hf_model(model, allow_download=allow_download, kind="emotion-voice")
        from transformers import pipeline

        self.model = model
        self.max_seconds = max_seconds
        self._pipe: Any = pipeline("audio-classification", model=reference, device="cpu")
        self._lock = threading.Lock()

    def warm(self) -> None:
        self.estimate(np.zeros(SAMPLE_RATE // 2, np.float32) + 1e-3)

    def estimate(self, audio: Audio, *, words: int = 0,
                 word_span: float = 0.0) -> ModalityEstimate:
        samples = np.nan_to_num(np.asarray(audio, dtype=np.float32))
        samples = samples[-int(self.max_seconds * SAMPLE_RATE):]
        if len(samples) < MIN_SECONDS * SAMPLE_RATE:
            return unavailable("voice", "audio too short")
        with self._lock:
            rows = self._pipe({"raw": samples, "sampling_rate": SAMPLE_RATE}, top_k=None)
        scores = map_labels({str(row["label"]): float(row["score"]) for row in rows})
        if not scores:
            return unavailable("voice", f"{self.model}: no label maps to the shared set")
        probabilities = normalise(scores)
        valence, arousal = valence_arousal(probabilities)
        seconds = len(samples) / SAMPLE_RATE
        confidence = min(1.0, seconds / 1.5) * (0.5 + 0.5 * peakedness(probabilities))
        return ModalityEstimate(modality="voice", probabilities=rounded(probabilities),
                                valence=round(valence, 4), arousal=round(arousal, 4),
                                confidence=round(confidence, 4),
                                features={"seconds": round(seconds, 3)}, note=self.model)

