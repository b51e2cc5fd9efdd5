"""EmotionModeler: the actor that gives every operator utterance a fused, explained emotion
estimate and keeps the operator's emotional state across the conversation.

In: ``AudioFrame`` (the operator's stream, kept for the last ``buffer_s`` seconds),
``BehaviorObservation`` (kept the same way), ``SpeechStarted``/``SpeechEnded`` (the voice span,
when a transcript carries none), ``TwinUtterance`` (what the twin said, for shifts) and the final
``Transcript``. Out, per final operator transcript: one ``EmotionEstimate`` (the fused result and
every modality's contribution: available ones with their weight, absent ones with
``available=False`` and weight 0, and why), a ``Metric`` ``emotion_estimate_ms`` (final
transcript published -> estimate published), and an ``OperatorState`` whenever the state
changed — which the dialogue's mind reads.

Clocks: the transcript's ``start``/``end`` and ``AudioFrame.start`` are audio stream times;
``BehaviorObservation.frame_t`` is video stream time. They are compared as they are: in a live
session both streams start with the session; a video file played beside an audio file both
start at 0. A known offset between them is ``video_offset_s`` (added to ``frame_t``).

When the video is live but its stream time has not reached the end of the utterance yet (its
actor started later than the audio's), the estimate waits for those frames, at most
``face_wait_s``. The three estimators run in one worker thread per utterance
(``asyncio.to_thread``); the pYIN pitch tracker is compiled at start (``voice.warm``). An
estimator that fails on bad input is listed as unavailable with the error: the estimate is still
published and the actor carries on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from actors.emotion.context import ContextSettings, ConversationContext, Observation
from actors.emotion.face import FaceEstimator
from actors.emotion.fusion import DEFAULT_PRIORS, fuse
from actors.emotion.labels import unavailable
from actors.emotion.text import (
    LexicalTextEstimator,
    TextEstimator,
    TransformersTextEstimator,
    word_count,
)
from actors.emotion.voice import (
    PRIORS,
    SAMPLE_RATE,
    ProsodyVoiceEstimator,
    SpeakerBaseline,
    TransformersVoiceEstimator,
    VoiceEstimator,
)
from twin.actor import Actor
from twin.messages import (
    AudioFrame,
    BehaviorObservation,
    EmotionEstimate,
    Message,
    Metric,
    ModalityEstimate,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinUtterance,
)

log = logging.getLogger(__name__)

Modality = Literal["text", "voice", "face"]
FRAME_SLACK_S = 0.25  # a video this close to the utterance's end has caught up (a frame or two)


class TextSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["lexical", "transformers"] = Field(
        "lexical", description="lexical: nade + VADER (offline); transformers: `model` below")
    model: str | None = Field(None, description="text-classification model: registry name, "
                              "local folder, or (with allow_download) a hub id")
    allow_download: bool = False


class VoiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["prosody", "transformers"] = "prosody"
    model: str | None = Field(None, description="audio-classification model: registry name, "
                              "local folder, or (with allow_download) a hub id")
    allow_download: bool = False
    warm: bool = Field(True, description="compile the pitch tracker at start (~15 s once)")
    max_seconds: float = Field(20.0, gt=1, description="longest stretch of a turn analysed")
    prior_weight: float = Field(3.0, ge=0, description="utterances' worth of population "
                                "priors in the operator's baseline")


class FaceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expression_weight: float = Field(0.3, ge=0, le=1, description="share of the tracker's "
                                     "facial-expression model beside the blendshape patterns")


class EmotionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: str = Field("operator", description="which AudioFrame stream is the operator")
    speaker: str = "operator"
    modalities: list[Modality] = Field(["text", "voice", "face"],
                                       description="the estimators to run")
    priors: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRIORS),
                                     description="trust in each modality before its confidence")
    agreement_gain: float = Field(0.3, ge=0, le=1)
    buffer_s: float = Field(60.0, gt=1, description="audio and video features kept")
    face_wait_s: float = Field(3.0, ge=0, description="while the video is live but its stream "
                               "time lags the utterance's end, wait this long for its frames")
    video_offset_s: float = Field(0.0, description="added to frame_t to get audio stream time")
    text: TextSettings = TextSettings()
    voice: VoiceSettings = VoiceSettings()
    face: FaceSettings = FaceSettings()
    context: ContextSettings = ContextSettings()


def build_text(settings: TextSettings) -> TextEstimator:
    if settings.backend == "transformers":
        if not settings.model:
            raise ValueError("emotion text.backend transformers needs text.model")
        return TransformersTextEstimator(settings.model, allow_download=settings.allow_download)
    return LexicalTextEstimator()


def build_voice(settings: VoiceSettings) -> VoiceEstimator:
    if settings.backend == "transformers":
        if not settings.model:
            raise ValueError("emotion voice.backend transformers needs voice.model")
        return TransformersVoiceEstimator(settings.model, allow_download=settings.allow_download,
                                          max_seconds=settings.max_seconds)
    return ProsodyVoiceEstimator(SpeakerBaseline(prior_weight=settings.prior_weight),
                                 max_seconds=settings.max_seconds)


class EmotionModeler(Actor):
    """Text, voice and face estimators, gated fusion, and the conversation context."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (
        AudioFrame, BehaviorObservation, SpeechStarted, SpeechEnded, Transcript, TwinUtterance)
    Settings: ClassVar[type[BaseModel]] = EmotionSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        from twin.models import REGISTRY

        if not isinstance(settings, EmotionSettings):
            return ()
        names = (settings.text.model if settings.text.backend == "transformers" else None,
                 settings.voice.model if settings.voice.backend == "transformers" else None)
        return tuple(name for name in names if name and name in REGISTRY)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.settings
        assert isinstance(settings, EmotionSettings)
        self.config = settings
        self.text: TextEstimator | None = None
        self.voice: VoiceEstimator | None = None
        self.face = FaceEstimator(expression_weight=settings.face.expression_weight)
        self.context = ConversationContext(settings.context)
        self._audio: deque[tuple[float, npt.NDArray[np.int16]]] = deque()
        self._frames: deque[BehaviorObservation] = deque()
        self._voice_span: tuple[float, float | None] | None = None
        self._twin_reply = ""
        self._twin_said = ""  # the twin's last complete (or cut) reply, before this utterance
        self.estimates = 0
        self._latencies: deque[float] = deque(maxlen=200)
        self._last_frame_at = -math.inf  # monotonic time the last observation arrived
        self._pending: deque[tuple[Transcript, float]] = deque()  # (transcript, deadline)
        self._estimating = asyncio.Lock()
        self._timers: set[asyncio.Task[None]] = set()
        self._recovered_voice: list[dict[str, float]] = []  # baseline features from the log
        self._broken: dict[str, str] = {}  # modality -> why its estimator could not load

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        """Load the text and voice estimators; one that cannot load (a missing package or
        model) is reported and its modality listed as unavailable: the others carry on."""
        modalities = self.config.modalities
        if "text" in modalities:
            try:
                self.text = await asyncio.to_thread(build_text, self.config.text)
            except Exception as error:
                self._broken["text"] = f"cannot load: {error}"[:200]
                await self.report_error(error)
        if "voice" in modalities:
            try:
                self.voice = await asyncio.to_thread(build_voice, self.config.voice)
                if self.config.voice.warm:
                    await asyncio.to_thread(self.voice.warm)
            except Exception as error:
                self.voice = None
                self._broken["voice"] = f"cannot load: {error}"[:200]
                await self.report_error(error)

    async def recover(self, history: Sequence[Message]) -> None:
        """Rebuild the conversation context and the voice baseline from past estimates."""
        baseline_features: list[dict[str, float]] = []
        for message in history:
            if not isinstance(message, EmotionEstimate):
                continue
            self.context.update(self._observation(message, "", None))
            for m in message.modalities:
                if m.modality == "voice" and m.available:
                    baseline_features.append({k: v for k, v in m.features.items()
                                              if k in PRIORS})
        self._recovered_voice = baseline_features

    # ------------------------------------------------------------------ messages

    async def on_stop(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        while self._pending:  # what waited for video that never came: estimate it now
            await self._flush(force=True)

    async def on_message(self, message: Message) -> None:
        await self._dispatch(message)
        if self._pending:
            await self._flush()

    async def _dispatch(self, message: Message) -> None:
        if isinstance(message, AudioFrame):
            if message.stream == self.config.stream:
                self._keep_audio(message)
        elif isinstance(message, BehaviorObservation):
            self._keep_frame(message)
        elif isinstance(message, SpeechStarted) and message.stream == self.config.stream:
            self._voice_span = (message.at, None)
        elif isinstance(message, SpeechEnded) and message.stream == self.config.stream:
            self._voice_span = (message.at - message.duration, message.at)
        elif isinstance(message, TwinUtterance):
            if message.index == 0:
                self._twin_reply = ""
            self._twin_reply = f"{self._twin_reply} {message.text}".strip()
            self._twin_said = self._twin_reply
        elif (isinstance(message, Transcript) and message.final
              and message.speaker == self.config.speaker):
            self._pending.append((message, time.monotonic() + self.config.face_wait_s))
            if self._video_behind(message):
                timer = asyncio.create_task(self._flush_later(self.config.face_wait_s))
                self._timers.add(timer)
                timer.add_done_callback(self._timers.discard)

    def _video_behind(self, transcript: Transcript) -> bool:
        """The video is live (a frame within the last second) but has not reached the end of
        the utterance yet, in stream time."""
        if "face" not in self.config.modalities or not self._frames:
            return False
        live = time.monotonic() - self._last_frame_at < 1.0
        newest = self._frames[-1].frame_t + self.config.video_offset_s
        return live and newest + FRAME_SLACK_S < self._span(transcript)[1]

    async def _flush(self, force: bool = False) -> None:
        """Estimate the waiting transcripts, oldest first, whose video has caught up (or whose
        wait is over)."""
        async with self._estimating:
            while self._pending:
                transcript, deadline = self._pending[0]
                if not force and self._video_behind(transcript) and time.monotonic() < deadline:
                    return
                self._pending.popleft()
                await self._estimate(transcript)

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay + 0.01)
        try:
            await self._flush()
        except Exception as error:  # a timer has no caller to report to
            await self.report_error(error)

    def _keep_audio(self, frame: AudioFrame) -> None:
        if frame.sample_rate != SAMPLE_RATE or frame.channels != 1 or len(frame.pcm) % 2:
            return  # the speech actor hears only 16 kHz mono too; counted nowhere else
        self._audio.append((frame.start, np.frombuffer(frame.pcm, "<i2")))
        newest = frame.start
        while self._audio and self._audio[0][0] < newest - self.config.buffer_s:
            self._audio.popleft()

    def _keep_frame(self, observation: BehaviorObservation) -> None:
        if not math.isfinite(observation.frame_t):
            return
        self._last_frame_at = time.monotonic()
        self._frames.append(observation)
        newest = observation.frame_t
        while self._frames and self._frames[0].frame_t < newest - self.config.buffer_s:
            self._frames.popleft()

    def audio_between(self, start: float, end: float) -> npt.NDArray[np.float32]:
        """The buffered operator audio from ``start`` to ``end`` (stream seconds)."""
        parts = []
        for frame_start, samples in self._audio:
            frame_end = frame_start + len(samples) / SAMPLE_RATE
            if frame_end <= start or frame_start >= end:
                continue
            first = max(0, round((start - frame_start) * SAMPLE_RATE))
            last = min(len(samples), round((end - frame_start) * SAMPLE_RATE))
            parts.append(samples[first:last])
        if not parts:
            return np.zeros(0, np.float32)
        return (np.concatenate(parts).astype(np.float32) / 32768.0).astype(np.float32)

    def _span(self, transcript: Transcript) -> tuple[float, float]:
        start, end = transcript.start, transcript.end
        if transcript.words:
            start = min(start, transcript.words[0].start) if end > start else \
                transcript.words[0].start
            end = max(end, transcript.words[-1].end)
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            span = self._voice_span
            if span is not None and span[1] is not None:
                return span[0], span[1]
            return 0.0, 0.0
        return start, end

    # ------------------------------------------------------------------ estimating

    async def _estimate(self, transcript: Transcript) -> None:
        start, end = self._span(transcript)
        audio = self.audio_between(start, end) if end > start else np.zeros(0, np.float32)
        offset = self.config.video_offset_s
        frames = [f if offset == 0 else msgspec.structs.replace(f, frame_t=f.frame_t + offset)
                  for f in self._frames if start <= f.frame_t + offset <= end]
        words = [w for w in transcript.words if w.word.strip()]
        n_words = len(words) or word_count(transcript.text)
        word_span = (words[-1].end - words[0].start) if len(words) >= 2 else 0.0
        modalities = await asyncio.to_thread(
            self.estimate_modalities, transcript.text, audio, n_words, word_span, frames,
            start, end)
        fused = fuse(modalities, self.config.priors, self.config.agreement_gain)
        estimate = EmotionEstimate(
            label=fused.label, probabilities={k: round(v, 4) for k, v in
                                              fused.probabilities.items()},
            valence=round(fused.valence, 4), arousal=round(fused.arousal, 4),
            confidence=round(fused.confidence, 4), modalities=fused.modalities,
            start=start, end=end, text=transcript.text,
            agreement=None if fused.agreement is None else round(fused.agreement, 4),
            turn=transcript.turn)
        await self.publish(estimate)
        since = transcript.t if transcript.t > 0 else time.time()
        latency_ms = (time.time() - since) * 1000
        self._latencies.append(latency_ms)
        self.estimates += 1
        await self.publish(Metric(name="emotion_estimate_ms", value=round(latency_ms, 2),
                                  unit="ms", turn=transcript.turn))
        state = self.context.update(self._observation(estimate, self._twin_said, n_words))
        if state is not None:
            await self.publish(state)

    def estimate_modalities(self, text: str, audio: npt.NDArray[np.float32], words: int,
                            word_span: float, frames: Sequence[BehaviorObservation],
                            start: float, end: float) -> list[ModalityEstimate]:
        """Every modality's estimate (in a worker thread); failures become unavailable ones."""
        results = []
        enabled = self.config.modalities
        for modality in ("text", "voice", "face"):
            if modality not in enabled:
                results.append(unavailable(modality, "not enabled"))
                continue
            if modality in self._broken:
                results.append(unavailable(modality, self._broken[modality]))
                continue
            try:
                if modality == "text":
                    assert self.text is not None
                    results.append(self.text.estimate(text))
                elif modality == "voice":
                    assert self.voice is not None
                    results.append(self._voice(audio, words, word_span))
                else:
                    results.append(self.face.estimate(frames, start, end))
            except Exception as error:  # bad input must not stop the actor
                log.warning("emotion %s estimator failed: %r", modality, error)
                results.append(unavailable(modality, f"error: {error!r}"[:200]))
        return results

    def _voice(self, audio: npt.NDArray[np.float32], words: int,
               word_span: float) -> ModalityEstimate:
        assert self.voice is not None
        recovered = self._recovered_voice
        if recovered and isinstance(self.voice, ProsodyVoiceEstimator):
            for features in recovered:
                self.voice.baseline.add(features)
            self._recovered_voice = []
        if len(audio) == 0:
            return unavailable("voice", "no operator audio over the utterance")
        return self.voice.estimate(audio, words=words, word_span=word_span)

    @staticmethod
    def _observation(estimate: EmotionEstimate, twin_before: str,
                     words: int | None) -> Observation:
        face = next((m for m in estimate.modalities if m.modality == "face" and m.available),
                    None)
        return Observation(
            probabilities=estimate.probabilities, valence=estimate.valence,
            arousal=estimate.arousal, confidence=estimate.confidence, turn=estimate.turn,
            text=estimate.text, twin_before=twin_before,
            face_coverage=face.features.get("coverage") if face is not None else None,
            words=words if words is not None else word_count(estimate.text))

    def on_health(self) -> dict[str, Any]:
        latencies = sorted(self._latencies)
        return {
            "estimates": self.estimates,
            "estimate_ms_p50": latencies[len(latencies) // 2] if latencies else None,
            "audio_s": round(sum(len(s) for _, s in self._audio) / SAMPLE_RATE, 1),
            "frames": len(self._frames),
            "operator": self.context.label,
            "shifts": len(self.context.shifts),
        }

