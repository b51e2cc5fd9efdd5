"""Speech recognition with faster-whisper (CTranslate2), tuned for short operator utterances.

``WhisperRecognizer.recognize(audio)`` returns the text, the words with their times and
probabilities, and a confidence. It runs faster-whisper's own parts — feature extractor,
CTranslate2 encoder, greedy/beam generation, cross-attention word alignment — but sizes the
encoder window to the utterance (rounded up to whole seconds) instead of padding every call to
30 s: on two cores that is ~0.6 s of encoder work saved per call, which is what makes partial
transcripts during speech and a final one right after it affordable.

Models come from the model registry (``whisper-tiny.en``, ``whisper-base``), a local CTranslate2
folder, or — only when ``allow_download`` is set — any faster-whisper model id from the hub.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from actors.lexicon import Lexicon

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 100  # mel frames
PADDING_S = 5.0  # silence after the speech in the encoder window (see ``recognize``)
MAX_VOCABULARY_TOKENS = 100  # of the decoder's 448
MIN_HEARD_S = 0.5  # audio this long that decodes as nothing is decoded again in the full window


@dataclass(frozen=True)
class RecognizedWord:
    word: str
    start: float  # seconds into the audio
    end: float
    probability: float


@dataclass(frozen=True)
class Recognition:
    text: str
    words: list[RecognizedWord] = field(default_factory=list)
    confidence: float = 0.0
    language: str = "en"
    no_speech_probability: float = 0.0


def resolve_model(model: str, *, allow_download: bool = False) -> str:
    """A local folder for ``model`` (registry name or folder), or the hub id if allowed."""
    from twin import models

    if allow_download and model not in models.REGISTRY and not Path(model).exists():
        return model  # a faster-whisper model id, fetched from the hub
    folder = models.locate(model, kind="asr", accept=Path.is_dir, expected="a local "
                           "CTranslate2 folder; set allow_download: true to fetch a "
                           "faster-whisper model id from the hub")
    if not (folder / "model.bin").is_file():
        raise models.ModelError(f"{model}: not a CTranslate2 Whisper folder (no model.bin)")
    return str(folder)


class WhisperRecognizer:
    """A faster-whisper model ready to recognise 16 kHz mono float audio."""

    def __init__(self, model: str = "whisper-tiny.en", *, compute_type: str = "int8",
                 cpu_threads: int = 2, beam_size: int = 1, language: str = "en",
                 allow_download: bool = False, max_window_s: int = 30,
                 vocabulary: str = "", hypotheses: int = 1,
                 lexicon: Lexicon | None = None) -> None:
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError:
            raise RuntimeError("faster-whisper is not installed: pip install -e '.[audio]'") \
                from None
        location = resolve_model(model, allow_download=allow_download)
        self.model = WhisperModel(location, device="cpu", compute_type=compute_type,
                                  cpu_threads=cpu_threads, local_files_only=not allow_download)
        multilingual = bool(self.model.model.is_multilingual)
        self.language = language if multilingual else "en"
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, multilingual, task="transcribe",
                                   language=self.language)
        self.beam_size = beam_size
        self.hypotheses = hypotheses
        self.lexicon = lexicon  # with ``hypotheses`` > 1: the n-best re-ranked by it
        self.max_window_s = max_window_s
        self.name = model
        # Words the operator will use (callsigns, place names) given to the decoder as earlier
        # text, Whisper's way of biasing towards a vocabulary (faster-whisper's "hotwords").
        self._context: list[int] = []
        if vocabulary.strip():
            words = self.tokenizer.encode(" " + vocabulary.strip())[:MAX_VOCABULARY_TOKENS]
            self._context = [self.tokenizer.sot_prev, *words]

    def recognize(self, audio: npt.NDArray[np.float32]) -> Recognition:
        """Recognise one utterance (at most ``max_window_s`` seconds are used)."""
        seconds = len(audio) / SAMPLE_RATE
        if seconds < 0.1:
            return Recognition("", language=self.language)
        # Seconds of padding tell the model that the speech has ended: with less than ~4 s it
        # tends to loop ("go forward ten meters. Go forward ...") and to miss the last words
        # (word error rate 44 % with 2 s, 6.7 % with 4 s on the fixture clips). With 5 s the
        # actor path matches plain faster-whisper on the LibriVox clips (4.2 %) on every host
        # tried; 4 s gave 11.3 % on an AMD EPYC ("amiable" -> "am you will"). A result that
        # still loops is decoded again in the full 30 s window, and so is half a second or more
        # heard as nothing: a short window loses short commands ("five five" came out as
        # nothing in 7 s and 10 s, as "5 5" in 30 s).
        window = min(self.max_window_s, math.ceil(seconds + PADDING_S))
        recognition, looped = self._recognize(audio, window)
        lost = not recognition.text and seconds >= MIN_HEARD_S
        if (looped or lost) and window < self.max_window_s:
            recognition, _ = self._recognize(audio, self.max_window_s)
        return recognition

    def _recognize(self, audio: npt.NDArray[np.float32],
                   window: int) -> tuple[Recognition, bool]:
        """One decode in a ``window``-second encoder window; and whether it looped."""
        import ctranslate2

        frames = window * FRAMES_PER_SECOND
        features = self.model.feature_extractor(audio[: window * SAMPLE_RATE],
                                                chunk_length=window)
        features = features[:, :frames]
        if features.shape[1] < frames:
            features = np.pad(features, ((0, 0), (0, frames - features.shape[1])))
        encoded = self.model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], np.float32)),
            to_cpu=False)
        prompt = [*self._context, *self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        max_length = min(448, 20 + 12 * window + len(self._context))  # prompt included
        rerank = self.lexicon is not None and self.hypotheses > 1
        hypotheses = self.hypotheses if rerank else 1
        result: Any = self.model.model.generate(
            encoded, [prompt], beam_size=max(self.beam_size, hypotheses),
            num_hypotheses=hypotheses, return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=[-1], max_length=max_length)[0]
        found = [[t for t in sequence if t < self.tokenizer.eot]
                 for sequence in result.sequences_ids]
        texts = [self.tokenizer.decode(tokens).strip() for tokens in found]
        best = (self.lexicon.choose(list(zip(texts, result.scores, strict=True)))
                if self.lexicon is not None and len(found) > 1 else 0)
        tokens, text = found[best], texts[best]
        # speech is ~3 tokens a second: running out of room means a decoding loop
        looped = len(tokens) >= max_length - len(prompt) - 1 or _repetitive(text)
        no_speech = float(result.no_speech_prob)
        if not text or (no_speech > 0.6 and result.scores[best] < -1.0):
            silent = Recognition("", language=self.language, no_speech_probability=no_speech)
            return silent, False
        alignment = self.model.find_alignment(self.tokenizer, [tokens], encoded,
                                              frames // 2)[0]
        words: list[RecognizedWord] = []
        # cross-attention may stretch the last word into the padding: no word outlasts the audio
        limit = min(len(audio), window * SAMPLE_RATE) / SAMPLE_RATE
        for w in alignment:
            word = w["word"].strip()
            if words and (not word or not any(c.isalnum() for c in word)):
                last = words[-1]  # punctuation belongs to the word before it
                words[-1] = RecognizedWord(last.word + word, last.start,
                                           min(float(w["end"]), limit), last.probability)
            elif word:
                words.append(RecognizedWord(word, min(float(w["start"]), limit),
                                            min(float(w["end"]), limit), float(w["probability"])))
        confidence = float(np.mean([w.probability for w in words])) if words else 0.0
        return Recognition(text, words, confidence, self.language, no_speech), looped


_STUTTER = re.compile(r"(.{1,12}?)\1{5,}")  # the same few characters six times in a row
_ECHO = re.compile(r"(\b\w.{8,}?[.!?])\s+\1", re.IGNORECASE)  # a sentence said twice over


def _echoes_a_phrase(text: str) -> bool:
    """A phrase of two words or more said again at once ("10 of clubs 10 of clubs"): Whisper
    does this on short commands. One word said again ("Okay. Okay.", "five five") is left as
    it is: it means the same, and numbers are read so."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    return any(words[start:start + size] == words[start + size:start + 2 * size]
               for size in range(2, len(words) // 2 + 1)
               for start in range(len(words) - 2 * size + 1))


def _repetitive(text: str) -> bool:
    """A decoding loop: a short stretch repeated, a sentence or phrase repeated, or text that
    compresses far better than speech does (faster-whisper's test)."""
    if _STUTTER.search(text) or _ECHO.search(text) or _echoes_a_phrase(text):
        return True
    data = text.encode()
    return len(data) >= 40 and len(data) / len(zlib.compress(data)) > 2.4
