"""Turn detection: streaming Silero VAD and an endpointer that decides when a turn starts and ends.

``SileroVAD`` runs the Silero VAD model that ships inside faster-whisper
(``faster_whisper/assets/silero_vad_v6.onnx``) on 32 ms chunks (512 samples at 16 kHz), keeping the
model's LSTM state and the 64-sample context across chunks — faster-whisper's own call resets them,
which is fine for a file but not for a stream.

``Endpointer`` turns the per-chunk speech probabilities into turn events, with hysteresis:

- a turn **starts** once voice (probability ≥ ``threshold``, then held down to ``threshold - 0.15``)
  has lasted ``min_speech_ms`` without a gap longer than ``max_gap_ms``; the start is stamped at
  the first voiced chunk;
- it **ends** once probability has stayed below ``threshold - 0.15`` (and, once a pause has
  begun, below ``threshold``) for ``end_silence_ms``; the
  end is stamped at the last voiced chunk (the true end of voice), the event arrives
  ``end_silence_ms`` later;
- ``silence_ms`` tells how long the current pause within a turn has lasted, so a recogniser can
  start decoding before the end is declared.

Times are stream seconds (the ``AudioFrame.start`` clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

CHUNK = 512  # samples per VAD step at 16 kHz: 32 ms
CHUNK_S = CHUNK / 16000
CONTEXT = 64


def silero_model_path() -> Path:
    """The Silero VAD model inside the installed faster-whisper package."""
    import importlib.util

    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise RuntimeError("faster-whisper is not installed: pip install -e '.[audio]'")
    path = Path(spec.origin).parent / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise RuntimeError(f"the Silero VAD model is missing from faster-whisper: {path}")
    return path


class SileroVAD:
    """Speech probability of each 32 ms chunk, with state carried across calls."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or silero_model_path()), providers=["CPUExecutionProvider"],
            sess_options=options)
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def __call__(self, chunk: npt.NDArray[np.float32]) -> float:
        """The probability that ``chunk`` (512 float samples at 16 kHz) holds speech."""
        if chunk.shape != (CHUNK,):
            raise ValueError(f"the VAD takes chunks of {CHUNK} samples, got {chunk.shape}")
        window = np.concatenate([self._context, chunk])[None, :].astype(np.float32)
        probability, self._h, self._c = self._session.run(
            None, {"input": window, "h": self._h, "c": self._c})
        self._context = chunk[-CONTEXT:]
        return float(np.asarray(probability).reshape(-1)[0])


@dataclass(frozen=True)
class TurnEvent:
    kind: Literal["started", "ended"]
    at: float  # stream time of the first / last voiced chunk
    duration: float = 0.0  # for "ended": end - start


class Endpointer:
    """Decides turn starts and ends from per-chunk speech probabilities."""

    def __init__(self, *, threshold: float = 0.5, min_speech_ms: int = 200,
                 end_silence_ms: int = 500, max_gap_ms: int = 100,
                 max_turn_s: float = 30.0) -> None:
        self.threshold = threshold
        self.low = max(0.01, threshold - 0.15)
        self.min_speech = min_speech_ms / 1000
        self.end_silence = end_silence_ms / 1000
        self.max_gap = max_gap_ms / 1000
        self.max_turn = max_turn_s
        self.in_turn = False
        self.start = 0.0  # first voiced chunk of the candidate or current turn
        self.last_voice = 0.0  # end of the last voiced chunk
        self._candidate = False

    @property
    def voiced_s(self) -> float:
        """How long the current (candidate) turn has had voice, up to its last voiced chunk."""
        return self.last_voice - self.start if (self.in_turn or self._candidate) else 0.0

    def silence_ms(self, now: float) -> float:
        """How long the pause in the current turn has lasted at stream time ``now``."""
        return max(0.0, now - self.last_voice) * 1000 if self.in_turn else 0.0

    def close(self) -> TurnEvent:
        """End the current turn now, at its last voiced chunk (decided between two chunks)."""
        self.in_turn = False
        return TurnEvent("ended", self.last_voice, self.last_voice - self.start)

    def push(self, probability: float, t: float) -> list[TurnEvent]:
        """Take the probability of the chunk starting at stream time ``t``."""
        end = t + CHUNK_S
        # Hysteresis: within a turn voice holds down to ``low``, but once a pause has begun
        # only a probability above ``threshold`` ends it (a click or a breath does not).
        # A candidate holds the same way: a short word's last chunks fall below ``threshold``.
        pausing = (self.in_turn or self._candidate) and t - self.last_voice > 1e-9
        holding = (self.in_turn or self._candidate) and not pausing
        voiced = probability >= (self.low if holding else self.threshold)
        events: list[TurnEvent] = []
        if not self.in_turn:
            if voiced:
                if not self._candidate or t - self.last_voice > self.max_gap:
                    self._candidate, self.start = True, t
                self.last_voice = end
                if self.last_voice - self.start >= self.min_speech:
                    self.in_turn, self._candidate = True, False
                    events.append(TurnEvent("started", self.start))
            elif self._candidate and end - self.last_voice > self.max_gap:
                self._candidate = False
            return events
        if voiced:
            self.last_voice = end
        too_long = end - self.start >= self.max_turn
        if end - self.last_voice >= self.end_silence or too_long:
            self.in_turn = False
            stop = self.last_voice if not too_long else end
            events.append(TurnEvent("ended", stop, stop - self.start))
        return events
