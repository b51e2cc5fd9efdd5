"""SpeechRecognizer: hears the operator — turn detection, barge-in and speech recognition.

In: ``AudioFrame`` (16 kHz mono, ~100 ms) of one stream; ``Speech`` and ``SpeechCut`` from the
twin's voice, to know when the twin is talking. Out: ``SpeechStarted`` / ``SpeechEnded`` (stream
times of the voice), partial ``Transcript``s while the operator speaks, the final ``Transcript``
(words with times and probabilities, confidence, the utterance's span) right after
``SpeechEnded``, ``Interrupt`` on barge-in, and ``Metric``s of the recogniser's delays.

How the final comes fast: every 32 ms chunk goes through the streaming Silero VAD and the
endpointer (``actors.vad``). While the operator speaks, the audio so far is decoded every
``partial_interval_ms`` for partial transcripts. As soon as a pause reaches ``speculate_ms``, the
utterance is decoded *as if* it had ended; when the pause then reaches ``end_silence_ms`` and the
turn ends, that result is already there (or nearly) and is published at once. If the operator goes
on speaking, the speculative result is dropped. Decoding runs in a worker thread, one at a time,
never on the event loop.

Barge-in: while the twin is speaking (its ``Speech`` audio is still playing), operator voice that
lasts ``barge_in_min_ms`` is decoded at once: words that only acknowledge the twin ("okay",
"uh-huh", "copy": ``backchannels``) let it go on, and their turn's final transcript is marked
``backchannel`` (the twin does not answer it); any other word ("wait", a question) publishes one
``Interrupt`` for the twin's turn, as does voice that goes on past ``backchannel_max_ms``. Shorter
sounds, and sounds with no words (a cough), do not interrupt; a "stop" or "wait" does, however
short, once its turn is heard.

Each operator turn gets the next ``turn`` number; everything about it carries that number.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from actors.asr import Recognition, WhisperRecognizer
from actors.audio import SAMPLE_RATE, pcm_to_float
from actors.vad import CHUNK, CHUNK_S, Endpointer, SileroVAD
from twin.actor import Actor, ActorFailed

if TYPE_CHECKING:
    from twin.config import Mission
from twin.messages import (
    AudioFrame,
    Interrupt,
    Message,
    Metric,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    Word,
)

# Audio kept after the end of voice: word-final fricatives are quiet, and Whisper given less
# room noise after the last word tends to loop on it ("old-s-s-y-y-y-...").
TAIL_S = 0.4


# Said alone while someone speaks, these tell them to go on (the listener's "backchannel").
BACKCHANNELS = (
    "okay", "ok", "yeah", "yes", "yep", "aye", "uh-huh", "uh huh", "mhm", "mm", "mm-hmm", "hmm",
    "right", "alright", "all right", "sure", "copy", "copy that", "roger", "roger that",
    "got it", "understood", "good", "fine", "i see", "go on", "thanks", "thank you",
)


# Words that stop a speaker at once, even as the last word heard so far.
_HALTS = frozenset({"wait", "stop", "hold", "halt", "no", "cancel", "negative"})


class SpeechSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("whisper-tiny.en", description="registry name, local CTranslate2 folder, "
                       "or (with allow_download) a faster-whisper model id")
    allow_download: bool = False
    compute_type: str = "int8"
    cpu_threads: int = Field(2, ge=1)
    beam_size: int = Field(2, ge=1)
    language: str = "en"
    stream: str = Field("operator", description="which AudioFrame stream to hear")
    threshold: float = Field(0.5, gt=0, lt=1, description="VAD speech probability")
    min_speech_ms: int = Field(250, ge=32)
    end_silence_ms: int = Field(500, ge=96, description="pause that ends the operator's turn")
    pre_roll_ms: int = Field(300, ge=0, description="audio kept before the detected start")
    max_turn_s: float = Field(28.0, gt=1, le=30)
    partial_interval_ms: int = Field(500, ge=100)
    speculate_ms: int = Field(400, ge=int(TAIL_S * 1000),
                              description="pause after which the final is decoded (at least the "
                              "400 ms of room noise kept after the voice)")
    barge_in_min_ms: int = Field(400, ge=0)
    backchannels: list[str] = Field(
        default_factory=lambda: list(BACKCHANNELS), description="words that, said alone while "
        "the twin speaks, acknowledge it rather than interrupt it; []: any voice of "
        "barge_in_min_ms interrupts at once (no decode first)")
    backchannel_max_ms: int = Field(1500, ge=0, description="voice this long while the twin "
                                    "speaks interrupts it, whatever the words")
    vocabulary: list[str] = Field(default_factory=list, description="words the operator will "
                                  "use (callsigns, places): the recogniser leans towards them")
    mission_vocabulary: bool = Field(False, description="add the mission's own names: the "
                                     "capitalised words of its roster, briefing, phases and "
                                     "injects (BULLDOG, MERCER ...); off by default: with "
                                     "tiny.en it hears the names better but the first words of "
                                     "an utterance worse (see mission_vocabulary)")


MAX_VOCABULARY_WORDS = 40
_NAME = re.compile(r"\b[A-Z][A-Z]{2,}\b(?: [0-9][0-9A-Z]?\b)?")  # BULLDOG, BULLDOG 0A, MULE 6


def mission_vocabulary(mission: Mission) -> list[str]:
    """The mission's own names, commonest first: the words written in capitals in its roster,
    setting, briefing, phases and injects (not the scripted lines), in title case ("Bulldog 0A";
    acronyms of up to three letters as written), which biases Whisper towards them better than
    capitals do.

    Measured with whisper-tiny.en on piper-spoken lines: the route-clearance callsigns of five
    lines heard 24 of 24 times with the mission's names vs 21 of 24 without; but on the three
    missions' scripted operator lines the word error rate was 8.7 % with vs 7.9 % without (the
    names pull the first words of an utterance: "Casualty in" -> "Cashily in"). Hence the
    setting is off by default."""
    texts = [mission.title, mission.setting, mission.briefing, mission.persona.callsign,
             *(f"{member.callsign} {member.name}" for member in mission.roster),
             *(f"{phase.title} {phase.briefing}" for phase in mission.phases),
             *(inject.text for inject in mission.injects)]
    found = Counter(match.group(0) for text in texts for match in _NAME.finditer(text))
    return [" ".join([_title(word), *rest]) for word, *rest in
            (name.split(" ") for name, _ in found.most_common())]


def is_backchannel(text: str, backchannels: Sequence[str] = BACKCHANNELS) -> bool:
    """Whether ``text`` holds only words that acknowledge ("Okay, okay.", "Uh-huh, copy.")."""
    said = " ".join(re.findall(r"[a-z]+(?:[-'][a-z]+)*", text.lower()))
    if not said:
        return False
    known = sorted({" ".join(b.lower().split()) for b in backchannels}, key=len, reverse=True)
    pattern = "|".join(re.escape(b) for b in known)
    return re.fullmatch(rf"(?:{pattern})(?: (?:{pattern}))*", said) is not None


def asks_something(text: str, backchannels: Sequence[str] = BACKCHANNELS) -> bool:
    """Whether ``text``, the start of what the operator is saying while the twin speaks, holds
    a word that is not an acknowledgement: "wait", "stop" at once; any other only once a word
    follows it (the last word of a decode cut mid-word is often a wrong one: "okay, go" of
    "okay, got it")."""
    known = {word for phrase in backchannels for word in phrase.lower().split()}
    words = re.findall(r"[a-z]+(?:[-'][a-z]+)*", text.lower())
    return halts(text) or any(word not in known for word in words[:-1])


def halts(text: str) -> bool:
    """Whether ``text`` holds a word that stops a speaker at once ("wait", "stop")."""
    return any(word in _HALTS for word in re.findall(r"[a-z]+", text.lower()))


def _title(word: str) -> str:
    """BULLDOG -> Bulldog; an acronym (three letters or fewer: MSR, FOB) stays as it is."""
    return word if len(word) <= 3 else word.title()


@dataclass
class _Utterance:
    turn: int
    start: float  # stream time of the first voiced chunk
    audio_start: float  # stream time of the first buffered sample (start - pre-roll)
    interrupted: bool = False
    speculation: tuple[float, asyncio.Task[Recognition]] | None = None  # (voice end, decode)
    partial_task: asyncio.Task[None] | None = None
    last_partial: float = 0.0  # stream time of the last partial decode
    # while the twin speaks: the decode of the voice so far (voiced seconds then, the decode)
    listening: tuple[float, asyncio.Task[Recognition]] | None = None
    over_twin: bool = False  # began while the twin was speaking


class SpeechRecognizer(Actor):
    """Turn detection, barge-in and recognition for one audio stream."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (AudioFrame, Speech, SpeechCut)
    Settings: ClassVar[type[BaseModel]] = SpeechSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        from twin.models import REGISTRY

        model = settings.model if isinstance(settings, SpeechSettings) else ""
        return (model,) if model in REGISTRY else ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.settings
        assert isinstance(settings, SpeechSettings)
        self.config = settings
        self.endpointer = Endpointer(
            threshold=settings.threshold, min_speech_ms=settings.min_speech_ms,
            end_silence_ms=settings.end_silence_ms, max_turn_s=settings.max_turn_s)
        self.vad: SileroVAD | None = None
        self.recognizer: WhisperRecognizer | None = None
        self.turn = 0
        self._pending = np.zeros(0, np.float32)  # samples not yet a whole VAD chunk
        self._pending_t = 0.0  # stream time of _pending[0]
        # (stream time of a frame's end, wall time it arrived) for the last frames: maps the end
        # of the voice (stream time) to when it was heard
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=256)
        # audio before a turn is confirmed: the pre-roll and the voice that confirms the turn
        self._history = np.zeros(0, np.float32)
        self._keep = int((settings.pre_roll_ms + settings.min_speech_ms + 200) / 1000
                         * SAMPLE_RATE)
        self._audio: list[np.ndarray[Any, np.dtype[np.float32]]] = []  # the current utterance
        self._utterance: _Utterance | None = None
        self._decoder = asyncio.Lock()  # one decode at a time
        self._twin_turn: int | None = None
        self._twin_until = 0.0  # wall time when the twin's queued speech ends

    # ------------------------------------------------------------------ lifecycle

    async def recover(self, history: Sequence[Message]) -> None:
        turns = [m.turn for m in history if m.turn is not None]
        self.turn = max(turns, default=0)

    async def on_start(self) -> None:
        config = self.config
        try:
            self.vad = await asyncio.to_thread(SileroVAD)
            self.recognizer = await asyncio.to_thread(
                WhisperRecognizer, config.model, compute_type=config.compute_type,
                cpu_threads=config.cpu_threads, beam_size=config.beam_size,
                language=config.language, allow_download=config.allow_download,
                vocabulary=", ".join(self.vocabulary()))
        except Exception as error:  # a missing model or library: say which and how to fix
            raise ActorFailed(str(error)) from None
        # warm up: the first real decode should not pay for lazy initialisation
        await asyncio.to_thread(self.recognizer.recognize, np.zeros(SAMPLE_RATE, np.float32))

    def vocabulary(self) -> list[str]:
        """The words given to the recogniser: the configured ones, then the mission's."""
        words = list(self.config.vocabulary)
        if self.config.mission_vocabulary and self.session.mission is not None:
            words += mission_vocabulary(self.session.mission)
        return list(dict.fromkeys(words))[:MAX_VOCABULARY_WORDS]

    def on_health(self) -> dict[str, Any]:
        return {"turn": self.turn, "in_turn": self._utterance is not None}

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: Message) -> None:
        if isinstance(message, AudioFrame):
            if message.stream == self.config.stream:
                await self._hear(message)
        elif isinstance(message, Speech):
            start = max(time.time(), self._twin_until)
            self._twin_until = start + len(message.pcm) / 2 / message.sample_rate
            self._twin_turn = message.turn
        elif isinstance(message, SpeechCut) and message.turn == self._twin_turn:
            self._twin_until = 0.0

    async def _hear(self, frame: AudioFrame) -> None:
        if frame.sample_rate != SAMPLE_RATE or frame.channels != 1:
            raise ValueError(f"audio frames must be 16 kHz mono, got {frame.sample_rate} Hz "
                             f"x {frame.channels} from {frame.source}")
        samples = pcm_to_float(frame.pcm)
        self._arrivals.append((frame.start + len(samples) / SAMPLE_RATE, frame.t))
        if not len(self._pending):
            self._pending_t = frame.start
        self._pending = np.concatenate([self._pending, samples])
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            t = self._pending_t
            self._pending_t += CHUNK_S
            await self._chunk(chunk, t)

    async def _chunk(self, chunk: np.ndarray[Any, np.dtype[np.float32]], t: float) -> None:
        assert self.vad is not None
        probability = self.vad(chunk)
        events = self.endpointer.push(probability, t)
        utterance = self._utterance
        if utterance is not None:
            self._audio.append(chunk)
        else:
            self._history = np.concatenate([self._history, chunk])[-self._keep:]
        for event in events:
            if event.kind == "started":
                await self._started(event.at, t + CHUNK_S)
            else:
                await self._ended(event.at, event.duration)
        utterance = self._utterance
        now = t + CHUNK_S
        if utterance is None:
            return
        await self._check_barge_in(utterance)
        silence = self.endpointer.silence_ms(now)
        if silence >= self.config.speculate_ms:
            voice_end = self.endpointer.last_voice
            if utterance.speculation is None or utterance.speculation[0] != voice_end:
                audio = self._utterance_audio(utterance, until=voice_end + TAIL_S)
                task = asyncio.create_task(self._decode(audio))
                utterance.speculation = (voice_end, task)
        elif silence == 0 and self._partial_due(utterance, now):
            utterance.last_partial = now
            utterance.partial_task = asyncio.create_task(
                self._partial(utterance, self._utterance_audio(utterance)))

    def _partial_due(self, utterance: _Utterance, now: float) -> bool:
        idle = utterance.partial_task is None or utterance.partial_task.done()
        return idle and now - utterance.last_partial >= self.config.partial_interval_ms / 1000

    def _wall_time(self, at: float) -> float:
        """When stream time ``at`` was heard (wall clock): between the arrivals of the frames
        around it, as their source paced them (real time, or faster in tests)."""
        arrivals = self._arrivals
        if not arrivals:
            return time.time()
        before = None
        for end, arrived in arrivals:
            if end >= at:
                if before is None or end <= before[0]:
                    return arrived - (end - at)
                share = (at - before[0]) / (end - before[0])
                return before[1] + share * (arrived - before[1])
            before = (end, arrived)
        end, arrived = arrivals[-1]
        return arrived + (at - end)

    # ------------------------------------------------------------------ turn events

    async def _started(self, at: float, now: float) -> None:
        self.turn += 1
        # the history ends at ``now``; keep from ``pre_roll_ms`` before the voice began
        history_start = now - len(self._history) / SAMPLE_RATE
        audio_start = max(history_start, at - self.config.pre_roll_ms / 1000)
        skip = round((audio_start - history_start) * SAMPLE_RATE)
        self._audio = [self._history[skip:].copy()]
        self._history = np.zeros(0, np.float32)
        self._utterance = _Utterance(self.turn, at, audio_start, last_partial=now,
                                     over_twin=self._twin_speaking())
        await self.publish(SpeechStarted(at=round(at, 3), stream=self.config.stream,
                                         turn=self.turn))

    async def _ended(self, at: float, duration: float) -> None:
        utterance = self._utterance
        assert utterance is not None
        self._utterance = None
        ended_wall = time.time()
        await self.publish(SpeechEnded(at=round(at, 3), duration=round(duration, 3),
                                       stream=self.config.stream, turn=utterance.turn,
                                       voice_end=round(self._wall_time(at), 3)))
        if utterance.partial_task is not None:
            utterance.partial_task.cancel()
        speculation = utterance.speculation
        if speculation is not None and abs(speculation[0] - at) < 1e-6:
            recognition = await speculation[1]
            reused = True
        else:
            if speculation is not None:
                speculation[1].cancel()
            recognition = await self._decode(self._utterance_audio(utterance, until=at + TAIL_S))
            reused = False
        self._history = np.zeros(0, np.float32)
        self._audio = []
        offset = utterance.audio_start
        if utterance.listening is not None:
            utterance.listening[1].cancel()
        backchannel = (utterance.over_twin and not utterance.interrupted
                       and is_backchannel(recognition.text, self.config.backchannels))
        if not utterance.interrupted and self._twin_speaking() and (
                halts(recognition.text) or (utterance.listening is not None and not backchannel
                                            and recognition.text.strip() != "")):
            # over before its words were known: a short request, or a "stop" however short
            await self._interrupt(utterance, "barge-in")
        await self.publish(Transcript(
            text=recognition.text, final=True, language=recognition.language,
            backchannel=backchannel,
            confidence=round(recognition.confidence, 3), start=round(utterance.start, 3),
            end=round(at, 3), speaker=self.config.stream, turn=utterance.turn,
            words=[Word(word=w.word, start=round(offset + w.start, 3),
                        end=round(offset + w.end, 3), probability=round(w.probability, 3))
                   for w in recognition.words]))
        delay = (time.time() - ended_wall) * 1000
        await self.publish(Metric(name="asr_final_after_end_ms", value=round(delay, 1),
                                  unit="ms", turn=utterance.turn,
                                  labels={"speculative": str(reused).lower()}))

    def _utterance_audio(self, utterance: _Utterance,
                         until: float | None = None) -> np.ndarray[Any, np.dtype[np.float32]]:
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        if until is not None:
            audio = audio[: max(0, int((until - utterance.audio_start) * SAMPLE_RATE))]
        return audio

    async def _decode(self, audio: np.ndarray[Any, np.dtype[np.float32]]) -> Recognition:
        assert self.recognizer is not None
        async with self._decoder:
            return await asyncio.to_thread(self.recognizer.recognize, audio)

    async def _partial(self, utterance: _Utterance,
                       audio: np.ndarray[Any, np.dtype[np.float32]]) -> None:
        recognition = await self._decode(audio)
        if self._utterance is utterance and recognition.text:
            await self.publish(Transcript(
                text=recognition.text, final=False, language=recognition.language,
                confidence=round(recognition.confidence, 3), start=round(utterance.start, 3),
                end=round(utterance.audio_start + len(audio) / SAMPLE_RATE, 3),
                speaker=self.config.stream, turn=utterance.turn))

    # ------------------------------------------------------------------ barge-in

    def _twin_speaking(self) -> bool:
        return time.time() < self._twin_until

    async def _check_barge_in(self, utterance: _Utterance) -> None:
        """Interrupt the twin for voice that asks something of it; not for a backchannel."""
        if utterance.interrupted or not self._twin_speaking():
            return
        config = self.config
        voiced = self.endpointer.voiced_s
        if voiced * 1000 < config.barge_in_min_ms:
            return
        if not config.backchannels or voiced * 1000 >= config.backchannel_max_ms:
            await self._interrupt(utterance, "barge-in")
            return
        listening = utterance.listening
        if listening is not None and listening[1].done():
            words = listening[1].result().text  # none: a cough, a breath
            if asks_something(words, config.backchannels):
                await self._interrupt(utterance, "barge-in")
                return
        if listening is None or listening[1].done():
            # the voice so far (again, while it says nothing yet but "okay", "cop"...)
            audio = self._utterance_audio(utterance)
            utterance.listening = (voiced, asyncio.create_task(self._decode(audio)))

    async def _interrupt(self, utterance: _Utterance, reason: str) -> None:
        utterance.interrupted = True
        self._twin_until = 0.0
        await self.publish(Interrupt(target_turn=self._twin_turn, reason=reason,
                                     turn=utterance.turn))
