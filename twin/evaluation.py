"""``twin eval emotion``: score the emotion estimators on a labelled set in MELD's CSV layout.

In: a CSV with the columns ``Utterance, Emotion, Sentiment, Dialogue_ID, Utterance_ID`` (MELD's
layout; ``Speaker`` and extra columns are allowed), labels in MELD's names (neutral, joy,
sadness, anger, fear, disgust, surprise) or the twin's own; optional ``Audio`` and ``Video``
columns with a wav / video path per row (relative to the CSV's folder). Out: ``Report`` —
accuracy, weighted and macro F1 and the confusion matrix, for the text estimator, for voice and
face where the rows have media, and for the fusion of what each row has — printable as a table or
as JSON.

Voice is normalised per ``Speaker`` (one running baseline each, rows in file order), as the
twin does for its operator. Face: the video's frames at ``video_fps`` go through mediapipe's
FaceLandmarker (``actors.behavior``) and the face estimator takes the whole clip as the span.

A bad file fails with ``EvalError`` naming the file, the row and the field. The estimators are
imported inside the functions: ``import twin`` stays light.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.messages import EMOTION_LABELS

MELD_TO_TWIN: dict[str, str] = {
    "neutral": "neutral",
    "joy": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fear": "fearful",
    "disgust": "disgusted",
    "surprise": "surprised",
}
REQUIRED_COLUMNS = ("Utterance", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")


class EvalError(ValueError):
    """A labelled set that cannot be read: names the file, the row and the field."""


@dataclass(frozen=True)
class Sample:
    """One labelled utterance."""

    text: str
    label: str  # one of EMOTION_LABELS
    sentiment: str
    dialogue: str
    utterance: str
    speaker: str = ""
    audio: Path | None = None
    video: Path | None = None


@dataclass(frozen=True)
class Scores:
    """Accuracy, F1 and the confusion matrix of one estimator on the samples it scored."""

    n: int
    accuracy: float
    weighted_f1: float
    macro_f1: float
    confusion: list[list[int]]  # rows: gold label, columns: predicted, in EMOTION_LABELS order
    per_label_f1: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": round(self.accuracy, 4),
                "weighted_f1": round(self.weighted_f1, 4), "macro_f1": round(self.macro_f1, 4),
                "per_label_f1": {k: round(v, 4) for k, v in self.per_label_f1.items()},
                "labels": list(EMOTION_LABELS), "confusion": self.confusion}


@dataclass
class Report:
    """Scores per estimator ("text", "voice", "face", "fused"), and the set's description."""

    data: str
    samples: int
    scores: dict[str, Scores] = field(default_factory=dict)
    majority_baseline: float = 0.0  # accuracy of always answering the commonest gold label
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "samples": self.samples,
                "majority_baseline_accuracy": round(self.majority_baseline, 4),
                "scores": {k: v.to_dict() for k, v in self.scores.items()}}


def _label(raw: str, path: Path, row: int) -> str:
    name = raw.strip().lower()
    if name in MELD_TO_TWIN:
        return MELD_TO_TWIN[name]
    if name in EMOTION_LABELS:
        return name
    known = ", ".join(sorted(set(MELD_TO_TWIN) | set(EMOTION_LABELS)))
    raise EvalError(f"{path}: row {row}: Emotion: unknown label {raw!r} (expected one of {known})")


def _media(value: str | None, base: Path, path: Path, row: int, column: str) -> Path | None:
    if value is None or not value.strip():
        return None
    media = Path(value.strip()).expanduser()
    media = media if media.is_absolute() else base / media
    if not media.is_file():
        raise EvalError(f"{path}: row {row}: {column}: no such file {str(media)!r}")
    return media


def load_samples(path: str | Path) -> list[Sample]:
    """The rows of a MELD-layout CSV (see the module doc); ``EvalError`` on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # MELD's own CSVs are not all UTF-8
    reader = csv.DictReader(text.splitlines())
    columns = {name.strip(): name for name in (reader.fieldnames or [])}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise EvalError(f"{path}: missing column(s) {', '.join(missing)} (MELD layout: "
                        f"{', '.join(REQUIRED_COLUMNS)})")
    lower = {name.lower(): original for name, original in columns.items()}
    audio_col = lower.get("audio") or lower.get("audio_path")
    video_col = lower.get("video") or lower.get("video_path")
    samples = []
    for row, record in enumerate(reader, start=2):  # row 1 is the header
        def cell(name: str, record: dict[str, Any] = record) -> str:
            value = record.get(columns[name])
            return "" if value is None else str(value)

        utterance = cell("Utterance").replace("\x92", "'").strip()
        if not utterance:
            raise EvalError(f"{path}: row {row}: Utterance: empty")
        samples.append(Sample(
            text=utterance, label=_label(cell("Emotion"), path, row),
            sentiment=cell("Sentiment").strip().lower(), dialogue=cell("Dialogue_ID").strip(),
            utterance=cell("Utterance_ID").strip(),
            speaker=str(record.get(columns.get("Speaker", ""), "") or "").strip(),
            audio=_media(record.get(audio_col) if audio_col else None, path.parent, path, row,
                         audio_col or "Audio"),
            video=_media(record.get(video_col) if video_col else None, path.parent, path, row,
                         video_col or "Video")))
    if not samples:
        raise EvalError(f"{path}: no rows")
    return samples


def score(gold: Sequence[str], predicted: Sequence[str]) -> Scores:
    """Accuracy, weighted F1 (by gold support), macro F1 (over labels present in gold) and the
    confusion matrix."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    index: dict[str, int] = {label: i for i, label in enumerate(EMOTION_LABELS)}
    confusion = [[0] * len(EMOTION_LABELS) for _ in EMOTION_LABELS]
    for g, p in zip(gold, predicted, strict=True):
        confusion[index[g]][index[p]] += 1
    n = len(gold)
    correct = sum(confusion[i][i] for i in range(len(EMOTION_LABELS)))
    per_label: dict[str, float] = {}
    weighted = 0.0
    for label, i in index.items():
        support = sum(confusion[i])
        predicted_i = sum(row[i] for row in confusion)
        precision = confusion[i][i] / predicted_i if predicted_i else 0.0
        recall = confusion[i][i] / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            per_label[label] = f1
            weighted += f1 * support
    return Scores(n=n, accuracy=correct / n if n else 0.0,
                  weighted_f1=weighted / n if n else 0.0,
                  macro_f1=sum(per_label.values()) / len(per_label) if per_label else 0.0,
                  confusion=confusion, per_label_f1=per_label)


def _video_observations(video: Path, fps: float) -> list[Any]:
    """BehaviorObservations of a video's frames at about ``fps`` (mediapipe FaceLandmarker)."""
    import cv2

    from actors.behavior import analyse_frames
    from twin.messages import BehaviorObservation

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise EvalError(f"{video}: cannot open the video")
    native = capture.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, round(native / fps))
    frames, times, n = [], [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if n % step == 0:
            frames.append(frame)
            times.append(n / native)
        n += 1
    capture.release()
    if not frames:
        raise EvalError(f"{video}: no readable frame")
    features = analyse_frames(frames, fps=native / step)  # type: ignore[arg-type]
    return [BehaviorObservation(frame_t=t, face_present=f is not None,
                                blendshapes=f.blendshapes if f is not None else {})
            for t, f in zip(times, features, strict=True)]


def evaluate(samples: Sequence[Sample], *, data: str = "", video_fps: float = 5.0,
             progress: Callable[[str], None] | None = None) -> Report:
    """Run the estimators over the samples (text always; voice and face where a row has media)
    and score each and their fusion."""
    import numpy as np

    from actors.audio import Resampler, read_wav
    from actors.emotion.face import FaceEstimator
    from actors.emotion.fusion import fuse
    from actors.emotion.labels import top
    from actors.emotion.text import LexicalTextEstimator, word_count
    from actors.emotion.voice import ProsodyVoiceEstimator

    text_estimator = LexicalTextEstimator()
    face_estimator = FaceEstimator()
    voices: dict[str, ProsodyVoiceEstimator] = {}
    gold: dict[str, list[str]] = {}
    predicted: dict[str, list[str]] = {}
    report = Report(data=data, samples=len(samples))

    def add(kind: str, truth: str, guess: str) -> None:
        gold.setdefault(kind, []).append(truth)
        predicted.setdefault(kind, []).append(guess)

    for n, sample in enumerate(samples):
        if progress is not None and n % 500 == 0:
            progress(f"{n}/{len(samples)}")
        estimates = [text_estimator.estimate(sample.text)]
        if sample.audio is not None:
            voice = voices.setdefault(sample.speaker, ProsodyVoiceEstimator())
            wav = read_wav(sample.audio)
            samples16 = Resampler(wav.sample_rate, wav.channels)(wav.samples, last=True)
            audio = (samples16.astype(np.float32) / 32768.0).astype(np.float32)
            estimates.append(voice.estimate(audio, words=word_count(sample.text),
                                            word_span=len(audio) / 16000))
        if sample.video is not None:
            observations = _video_observations(sample.video, video_fps)
            estimates.append(face_estimator.estimate(
                observations, 0.0, observations[-1].frame_t + 1e-6))
        for estimate in estimates:
            if estimate.available:
                add(estimate.modality, sample.label, top(estimate.probabilities))
        fused = fuse(estimates)
        add("fused", sample.label, fused.label)
        report.predictions.append({"text": sample.text, "gold": sample.label,
                                   "predicted": fused.label,
                                   "confidence": round(fused.confidence, 3)})
    for kind in ("text", "voice", "face", "fused"):
        if kind in gold:
            report.scores[kind] = score(gold[kind], predicted[kind])
    labels = [s.label for s in samples]
    report.majority_baseline = max(labels.count(label) for label in set(labels)) / len(labels)
    return report


def format_report(report: Report) -> str:
    """The report as readable text: one line of figures per estimator, then the confusion
    matrix of the fusion."""
    lines = [f"{report.data}: {report.samples} utterances; always answering the commonest "
             f"label would score accuracy {report.majority_baseline:.3f}"]
    for kind, scores in report.scores.items():
        lines.append(f"  {kind:6} n={scores.n:<5} accuracy {scores.accuracy:.3f}  weighted F1 "
                     f"{scores.weighted_f1:.3f}  macro F1 {scores.macro_f1:.3f}")
    fused = report.scores.get("fused")
    if fused is not None:
        short = [label[:5] for label in EMOTION_LABELS]
        lines.append("  confusion (fused; rows: gold, columns: predicted)")
        lines.append("  " + " " * 10 + " ".join(f"{s:>6}" for s in short))
        for label, row in zip(EMOTION_LABELS, fused.confusion, strict=True):
            lines.append(f"  {label:>10}" + " ".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
