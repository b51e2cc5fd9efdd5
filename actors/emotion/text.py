"""Text: the operator's final transcript -> a ``ModalityEstimate`` over the shared labels.

Two backends, both behind ``TextEstimator.estimate(text) -> ModalityEstimate``:

- ``LexicalTextEstimator`` (the offline default): ``nade`` (fastText emoji prediction reduced by
  LightGBM to Plutchik's eight emotion intensities; model files inside the PyPI wheel) and
  VADER (a rule-based sentiment lexicon, ``vaderSentiment``). Plutchik -> ours: anger -> angry,
  disgust -> disgusted, fear -> fearful, joy -> happy, sadness -> sad, surprise -> surprised;
  trust counts a little towards happy, anticipation towards neutral; neutral itself is what is
  left when no emotion is intense (see ``nade_to_labels``). VADER's compound score sharpens the
  split between positive and negative labels and gives most of the valence.
- ``TransformersTextEstimator``: any Hugging Face text-classification emotion model, by local
  folder or registry name — or, only when ``allow_download`` is set, by hub id. Its labels are
  mapped by name (joy -> happy, anger -> angry, ...; unknown labels are dropped).

Confidence falls for short transcripts (one word: ~0.25 of the full value; empty: 0, and the
modality is unavailable) and a little for very long ones (many sentences mix emotions), and
rises with how peaked the distribution is.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from actors.emotion.labels import (
    finite,
    normalise,
    peakedness,
    rounded,
    unavailable,
    valence_arousal,
)
from twin.messages import ModalityEstimate

_WORD = re.compile(r"[A-Za-z0-9']+")

# Names emotion classifiers use for their labels -> ours.
LABEL_NAMES: dict[str, str] = {
    "neutral": "neutral", "none": "neutral", "others": "neutral", "calm": "neutral",
    "joy": "happy", "happy": "happy", "happiness": "happy", "love": "happy", "hap": "happy",
    "sadness": "sad", "sad": "sad", "grief": "sad",
    "anger": "angry", "angry": "angry", "ang": "angry", "annoyance": "angry",
    "fear": "fearful", "fearful": "fearful", "scared": "fearful", "nervousness": "fearful",
    "disgust": "disgusted", "disgusted": "disgusted",
    "surprise": "surprised", "surprised": "surprised", "sur": "surprised",
    "neu": "neutral", "fea": "fearful", "dis": "disgusted",
}


class TextEstimator(Protocol):
    def estimate(self, text: str) -> ModalityEstimate: ...


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def length_factor(words: int) -> float:
    """How much a transcript of ``words`` words can say: 0 for none, ~0.3 for one, 1 from
    six words on, easing to 0.8 beyond 80 (a long turn mixes emotions)."""
    if words <= 0:
        return 0.0
    factor = float(min(1.0, words / 6.0) ** 0.7)
    if words > 80:
        factor *= max(0.8, 1.0 - (words - 80) / 400)
    return factor


def map_labels(scores: Mapping[str, float]) -> dict[str, float]:
    """A classifier's {its label: score} -> our labels (summed where several map to one)."""
    mapped: dict[str, float] = {}
    for name, score in scores.items():
        ours = LABEL_NAMES.get(name.strip().lower())
        if ours is not None:
            mapped[ours] = mapped.get(ours, 0.0) + max(0.0, finite(score))
    return mapped


def nade_to_labels(plutchik: Mapping[str, float], compound: float) -> dict[str, float]:
    """Plutchik intensities (nade, each in [0, 1]) and VADER's compound score -> our labels.

    Emotions keep their intensity; neutral gets what the strongest emotion leaves
    (``1 - max``) scaled down by how much sentiment VADER finds. Compound sharpens the split:
    positive labels x (1 + c), negative ones x (1 - c) for c > 0 (and the reverse for c < 0)."""
    p = {key: max(0.0, finite(value)) for key, value in plutchik.items()}
    scores = {
        "happy": p.get("joy", 0.0) + 0.3 * p.get("trust", 0.0),
        "sad": p.get("sadness", 0.0),
        "angry": p.get("anger", 0.0),
        "fearful": p.get("fear", 0.0),
        "disgusted": p.get("disgust", 0.0),
        "surprised": p.get("surprise", 0.0),
    }
    c = max(-1.0, min(1.0, finite(compound)))
    for label in ("sad", "angry", "fearful", "disgusted"):
        scores[label] *= 1.0 - c
    scores["happy"] *= 1.0 + c
    strongest = max(scores.values())
    scores["neutral"] = max(0.0, 1.0 - 1.6 * strongest) * (1.0 - 0.6 * abs(c)) \
        + 0.3 * p.get("anticipation", 0.0) * (1.0 - abs(c))
    return normalise(scores)


class LexicalTextEstimator:
    """nade + VADER, offline (see the module doc). Thread-safe; loads on construction (~1 s)."""

    def __init__(self) -> None:
        try:
            from nade import Nade
            from threadpoolctl import ThreadpoolController
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as error:
            raise ImportError(f"the text emotion estimator needs {error.name}: "
                              "pip install 'twin[emotion]'") from error
        with warnings.catch_warnings():  # "unpack <label> model": its first load unzips them
            warnings.simplefilter("ignore", UserWarning)
            self._nade: Any = Nade()
        self._vader: Any = SentimentIntensityAnalyzer()
        self._lock = threading.Lock()
        self._threads = ThreadpoolController()

    def scores(self, text: str) -> tuple[dict[str, float], dict[str, float]]:
        """(nade's Plutchik intensities, VADER's polarity scores) of ``text``."""
        # One OpenMP thread for LightGBM: its default (every core) is 5-10x slower for one
        # sentence on a busy machine.
        with self._lock, self._threads.limit(limits=1, user_api="openmp"):
            raw = self._nade.predict(text)
        plutchik = {label: float(values[0].as_py() if hasattr(values[0], "as_py")
                                 else values[0]) for label, values in raw.items()}
        vader = {key: float(value) for key, value in
                 self._vader.polarity_scores(text).items()}
        return plutchik, vader

    def estimate(self, text: str) -> ModalityEstimate:
        words = word_count(text)
        if words == 0:
            return unavailable("text", "empty transcript")
        plutchik, vader = self.scores(text.strip())
        compound = finite(vader.get("compound", 0.0))
        probabilities = nade_to_labels(plutchik, compound)
        valence, arousal = valence_arousal(probabilities)
        valence = max(-1.0, min(1.0, 0.4 * valence + 0.6 * compound))
        arousal = max(-1.0, min(1.0, arousal + 0.1 * min(3, text.count("!"))))
        confidence = 0.8 * length_factor(words) * (0.5 + 0.5 * peakedness(probabilities))
        features = {f"nade_{k}": v for k, v in plutchik.items()}
        features.update({"vader_compound": compound, "words": float(words)})
        return ModalityEstimate(modality="text", probabilities=rounded(probabilities),
                                valence=round(valence, 4), arousal=round(arousal, 4),
                                confidence=round(confidence, 4), features=rounded(features),
                                note="" if words > 1 else "one-word transcript")


def resolve_hf_model(model: str, *, allow_download: bool, kind: str) -> str:
    """A transformers model reference that needs no hub: a registry name or local folder; a hub
    id only when ``allow_download`` is set (else ``ModelError`` naming the setting)."""
    from twin.models import ModelError, locate

    try:
        return str(locate(model, kind=kind, accept=lambda p: (p / "config.json").is_file(),
                          expected="a local transformers model folder (with config.json)"))
    except ModelError:
        if allow_download and not Path(model).expanduser().exists():
            return model
        raise ModelError(f"{kind} model {model!r}: not a registry model nor a local folder with "
                         "config.json; set allow_download: true to fetch it from the hub by id") \
            from None


class TransformersTextEstimator:
    """A Hugging Face text-classification emotion model (loaded when configured)."""

    def __init__(self, model: str, *, allow_download: bool = False) -> None:
        reference = resolve_hf_model(model, allow_download=allow_download, kind="emotion-text")
        from transformers import pipeline

        self.model = model
        self._pipe: Any = pipeline("text-classification", model=reference, top_k=None,
                                   device="cpu")
        self._lock = threading.Lock()

    def estimate(self, text: str) -> ModalityEstimate:
        words = word_count(text)
        if words == 0:
            return unavailable("text", "empty transcript")
        with self._lock:
            result = self._pipe(text.strip(), truncation=True)
        rows = result[0] if result and isinstance(result[0], list) else result
        scores = map_labels({str(row["label"]): float(row["score"]) for row in rows})
        if not scores:
            return unavailable("text", f"{self.model}: no label maps to the shared set")
        probabilities = normalise(scores)
        valence, arousal = valence_arousal(probabilities)
        confidence = length_factor(words) * (0.5 + 0.5 * peakedness(probabilities))
        return ModalityEstimate(modality="text", probabilities=rounded(probabilities),
                                valence=round(valence, 4), arousal=round(arousal, 4),
                                confidence=round(confidence, 4),
                                features={"words": float(words)}, note=self.model)
