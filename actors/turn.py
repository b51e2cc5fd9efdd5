"""End of turn: when the operator has finished, judged from more than the length of a pause.

A fixed pause cannot tell "Which hospital does the casualty go to, ... and who do we tell?" from
a finished question; a long one makes every answer late. ``EndOfTurn`` decides how long the
current pause must last before the turn ends, from three signals:

- **the turn model** (``SmartTurn``): pipecat's Smart Turn v3.2 (a Whisper-tiny encoder and a
  head, fetched as data by the model registry) reads the last 8 s of the operator's audio once the
  pause reaches ``judge_ms`` and gives P(the speaker has finished). It hears intonation and
  rhythm, but judges some complete read sentences unfinished and most pauses between two words
  of a short command finished ("ten ... of clubs"), so it never ends a turn alone;
- **the words** of the utterance, decoded by the recogniser at the same pause: a trailing "and",
  "of", "the", "uh", a comma, is an unfinished turn whatever the model heard; a question mark
  written by the recogniser's language model is a finished one. A turn ends as finished only
  once its words are known, which costs the reply nothing: the final transcript waits for the
  same decode;
- **the operator's habits**: pauses after which this operator went on speaking (inside a turn
  just as it was judged finished, or a new turn started after one judged finished before the twin
  said anything: that end came too early) lengthen the wait for a turn judged finished, to beyond
  most of their own such pauses (two make a habit).

The waits: ``complete_pause_ms`` for a turn judged complete (or longer, by habit);
``unsure_pause_ms`` for one judged unfinished; ``max_pause_ms`` for words that trail off, and
always as the ceiling. Times are milliseconds of pause after the last voiced chunk.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
WINDOW_S = 8  # the turn model hears the last 8 s


class SmartTurn:
    """P(the speaker has finished their turn) for the audio up to now (16 kHz float32)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime
        from faster_whisper.feature_extractor import FeatureExtractor

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=options)
        # Whisper's log-mel spectrogram (80 bands, 10 ms hop): 8 s -> 800 frames
        self._features = FeatureExtractor(feature_size=80)

    def __call__(self, audio: npt.NDArray[np.float32]) -> float:
        samples = WINDOW_S * SAMPLE_RATE
        window = np.zeros(samples, np.float32)  # shorter audio is padded with silence in front
        tail = audio[-samples:]
        window[samples - len(tail):] = tail
        # the model was trained on waveforms scaled to zero mean and unit variance
        window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
        features = self._features(window, padding=0)[None].astype(np.float32)
        (logits,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(logits).reshape(-1)[0])


def load_smart_turn(model: str) -> SmartTurn:
    """The turn model named ``model``: a registry name or a path to its ``.onnx`` file."""
    from twin import models

    location = models.locate(model, kind="turn", accept=lambda path: path.suffix == ".onnx"
                             and path.is_file(), expected="a Smart Turn .onnx file")
    if location.is_dir():
        location = next(location.glob("*.onnx"))
    return SmartTurn(location)


# Words a finished sentence hardly ever ends on: conjunctions, articles, possessives, fillers.
# (Not prepositions or verbs: "Where is it from?", "Yes, we do.")
_TRAILING = frozenset({
    "and", "or", "but", "nor", "because", "than", "if", "whether", "although",
    "the", "a", "an", "my", "our", "your", "their", "its", "every", "each",
    "of", "uh", "um", "er", "erm", "ah",
})
_WORD = re.compile(r"[a-z']+|\d+")


def unfinished(text: str) -> bool:
    """Whether the words so far trail off: a last word that begins more ("and", "the", "uh"),
    or a comma, colon or dash after it (the recogniser's language model expects more)."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith((",", ":", ";", "-", "...", "…")):
        return True
    words = _WORD.findall(stripped.lower())
    return bool(words) and words[-1] in _TRAILING


def finished(text: str) -> bool:
    """Whether the words end as a question does: the recogniser wrote a question mark."""
    return text.strip().endswith("?") and not unfinished(text)


class EndOfTurn:
    """How long the current pause must last to end the operator's turn."""

    def __init__(self, *, complete_pause_ms: int = 100, unsure_pause_ms: int = 800,
                 max_pause_ms: int = 2000, complete_at: float = 0.5,
                 learn: bool = True, habit_pauses: int = 20) -> None:
        self.complete_pause = complete_pause_ms
        self.unsure_pause = max(unsure_pause_ms, complete_pause_ms)
        self.max_pause = max(max_pause_ms, self.unsure_pause)
        self.complete_at = complete_at
        self.learn = learn
        # pauses (ms) after which this operator went on speaking
        self.habits: deque[float] = deque(maxlen=habit_pauses)

    def complete_wait(self) -> float:
        """The pause that ends a turn judged complete: ``complete_pause_ms``, or longer for an
        operator who has gone on after pauses that long (beyond three in four of them)."""
        if len(self.habits) < 2:  # one long pause is not yet a habit
            return self.complete_pause
        usual = float(np.quantile(np.asarray(self.habits), 0.75)) + 64  # two VAD chunks more
        return min(max(self.complete_pause, usual), self.unsure_pause)

    def wait_ms(self, complete: float | None, text: str | None) -> float:
        """The pause that ends the turn, given the turn model's P(complete) (None: not judged
        yet) and the decoded words (None: not decoded yet). A turn ends as finished only once
        its words are known: the turn model hears "ten of ..." as finished as often as not."""
        if text is None:
            return self.unsure_pause
        if unfinished(text):
            return self.max_pause
        if (complete is not None and complete >= self.complete_at) or finished(text):
            return self.complete_wait()
        return self.unsure_pause

    def went_on(self, pause_ms: float) -> None:
        """The operator went on speaking after a pause of ``pause_ms``: remember it, as one of
        the pauses they make without finishing."""
        if self.learn and pause_ms > 0:
            self.habits.append(min(pause_ms, self.unsure_pause))

    def describe(self) -> dict[str, Any]:
        return {"complete_wait_ms": round(self.complete_wait()), "habits": len(self.habits)}
