"""LipSync: the twin's sentences become speech — audio, viseme track and word timings — in order.

In: ``TwinUtterance`` (the dialogue's reply, sentence by sentence as it streams) and ``Interrupt``.
Out: one ``Speech`` per sentence (same ``turn``; 22.05 kHz int16 PCM, visemes from
``actors.visemes``, word timings, the utterance's expression), and ``SpeechCut`` when an
interrupt stops a reply.

Sentences are queued as they arrive and synthesised one at a time, in arrival order, by a worker
task (the voice runs in a thread: ``asyncio.to_thread``), so the first sentence goes out while the
dialogue is still writing the rest, and an interrupt is handled at once even while a sentence is
being synthesised. An utterance longer than ``max_chars`` is split at sentence, then clause, then
word boundaries, each piece its own ``Speech``, and a reply's first sentence longer than
``first_chars`` is split at its first clause end (so the first audio, which waits for its whole
piece to be synthesised, starts sooner); ``Speech.index`` counts the turn's speech messages
(equal to the utterance index unless one was split). Empty text gives no ``Speech``.

Playback happens in the browser, so this actor keeps a model of it: a ``Speech`` starts playing
when it is published, or when the turn's previous sentence ends if that is later (sentences play
back to back). On ``Interrupt`` for the current turn (``target_turn`` None means whatever is being
spoken), the queued sentences of that turn are dropped, a sentence being synthesised is discarded
when it comes back, later utterances of the turn are ignored, and ``SpeechCut`` says what was
heard: the sentences that had finished playing plus the words of the playing sentence that ended
before the cut, the index of that sentence and how far into it the cut came. Stopping the audio
itself is the player's job (the avatar gateway stops on ``Interrupt``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors.visemes import visemes_for
from actors.voices import Synthesis, Voice, load_voice, normalize_text
from twin.actor import Actor
from twin.messages import Interrupt, Message, Speech, SpeechCut, TwinUtterance, WordTiming
from twin.models import REGISTRY


class LipSyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    voice: str = Field("piper-joe-medium",
                       description="model registry name, path to a piper .onnx, or espeak-ng")
    fallback: bool = Field(True, description="speak with espeak-ng when the voice is absent")
    max_chars: int = Field(240, ge=20, description="longest text synthesised as one Speech")
    first_chars: int = Field(90, ge=20, description="a reply's first sentence longer than this "
                             "is split at its first clause end that leaves a piece this short, "
                             "so its audio starts sooner")
    min_viseme_s: float = Field(0.04, ge=0, description="shortest viseme (except lips closed)")
    warm_up: bool = Field(True, description="synthesise a word at start (first reply is fast)")


@dataclass
class _Job:
    turn: int | None
    text: str
    final: bool
    expression: str


@dataclass
class _Played:
    """A published sentence, on the modelled playback timeline (monotonic seconds)."""

    index: int
    text: str
    words: list[tuple[str, float, float]]
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class _Turn:
    played: list[_Played] = field(default_factory=list)
    queued: int = 0  # jobs waiting or being synthesised
    next_index: int = 0
    cut: bool = False


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def split_text(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most ``max_chars``: at sentence ends, then clause ends, then
    spaces (a single word longer than that is cut)."""
    text = " ".join(text.split())
    if not text:
        return []
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in _pack(_CLAUSE_END.split(sentence), max_chars):
            if len(clause) <= max_chars:
                pieces.append(clause)
            else:
                pieces.extend(_pack(_hard_split(clause, max_chars), max_chars))
    return [piece for piece in pieces if piece.strip()]


def split_first(text: str, first_chars: int) -> list[str]:
    """``text`` as one piece, or as a first clause of at most ``first_chars`` and the rest (when
    the text is longer than that and has such a clause end: a comma, semicolon or colon)."""
    text = " ".join(text.split())
    if len(text) <= first_chars:
        return [text] if text else []
    clauses = _CLAUSE_END.split(text)
    first = clauses[0]
    if len(clauses) < 2 or len(first) > first_chars:
        return [text]
    return [first, text[len(first):].strip()]


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Join consecutive parts while they fit."""
    packed: list[str] = []
    for part in parts:
        if packed and len(packed[-1]) + 1 + len(part) <= max_chars:
            packed[-1] = f"{packed[-1]} {part}"
        else:
            packed.append(part)
    return packed


def _hard_split(text: str, max_chars: int) -> list[str]:
    words: list[str] = []
    for word in text.split(" "):
        words.extend(word[i:i + max_chars] for i in range(0, len(word), max_chars))
    return words


class LipSync(Actor):
    """Speaks the twin's utterances: ``TwinUtterance`` in, ``Speech`` (and ``SpeechCut``) out."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (TwinUtterance, Interrupt)
    Settings: ClassVar[type[BaseModel]] = LipSyncSettings

    def __init__(self, *args: Any, voice: Voice | None = None, **kwargs: Any) -> None:
        """``voice``: use this voice instead of loading ``settings.voice`` (tests, benches)."""
        super().__init__(*args, **kwargs)
        self.voice: Voice | None = voice
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._turns: collections.OrderedDict[int | None, _Turn] = collections.OrderedDict()
        self._current: int | None = None  # turn of the latest utterance
        self._worker: asyncio.Task[None] | None = None
        self._in_hand: _Job | None = None  # the job being synthesised
        self.spoken = 0
        self.cuts = 0
        self.synthesis_s = 0.0
        self.audio_s = 0.0

    @property
    def options(self) -> LipSyncSettings:
        settings = self.settings
        assert isinstance(settings, LipSyncSettings)
        return settings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        voice = settings.voice if isinstance(settings, LipSyncSettings) else ""
        return (voice,) if voice in REGISTRY else ()

    async def on_start(self) -> None:
        if self.voice is None:
            options = self.options
            self.voice = await asyncio.to_thread(load_voice, options.voice,
                                                 fallback=options.fallback)
        if self.options.warm_up:
            await asyncio.to_thread(self.voice.synthesize, "Ready.")
        self._worker = asyncio.create_task(self._speak(), name=f"{self.name}-speak")

    async def on_stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def on_health(self) -> dict[str, Any]:
        return {
            "voice": getattr(self.voice, "name", None),
            "queued": self._jobs.qsize(),
            "spoken": self.spoken,
            "cuts": self.cuts,
            "real_time_factor": round(self.synthesis_s / self.audio_s, 4) if self.audio_s else None,
        }

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: Message) -> None:
        if isinstance(message, TwinUtterance):
            self._queue(message)
        elif isinstance(message, Interrupt):
            await self._interrupt(message)

    def _turn(self, turn: int | None) -> _Turn:
        state = self._turns.get(turn)
        if state is None:
            state = self._turns[turn] = _Turn()
            while len(self._turns) > 32:  # keep the recent turns only
                self._turns.popitem(last=False)
        self._turns.move_to_end(turn)
        return state

    def _queue(self, utterance: TwinUtterance) -> None:
        state = self._turn(utterance.turn)
        if state.cut:
            if utterance.turn is not None or utterance.index != 0:
                return  # the rest of an interrupted reply
            state.cut = False  # turn-less speech: a new reply begins
        self._current = utterance.turn
        pieces = split_text(utterance.text, self.options.max_chars)
        if utterance.index == 0 and pieces:  # the reply's first audio: as soon as it can be
            pieces = [*split_first(pieces[0], self.options.first_chars), *pieces[1:]]
        for k, piece in enumerate(pieces):
            final = utterance.final and k == len(pieces) - 1
            self._jobs.put_nowait(_Job(utterance.turn, piece, final, utterance.expression))
            state.queued += 1

    async def _speak(self) -> None:
        while True:
            job = await self._jobs.get()
            state = self._turn(job.turn)
            try:
                if state.cut:
                    continue
                assert self.voice is not None
                began = time.monotonic()
                self._in_hand = job
                synthesis = await asyncio.to_thread(self.voice.synthesize, job.text)
                self._in_hand = None
                self.synthesis_s += time.monotonic() - began
                if state.cut or not synthesis.pcm:
                    continue
                await self._publish(job, state, synthesis)
            except Exception as error:  # one bad sentence must not silence the twin
                await self.report_error(error)
            finally:
                self._in_hand = None
                state.queued -= 1

    async def _publish(self, job: _Job, state: _Turn, synthesis: Synthesis) -> None:
        track = visemes_for(synthesis.phonemes, synthesis.duration, self.options.min_viseme_s)
        index = state.next_index
        state.next_index += 1
        await self.publish(Speech(
            turn=job.turn, text=synthesis.text, index=index, final=job.final,
            pcm=synthesis.pcm, sample_rate=synthesis.sample_rate, visemes=track,
            words=[WordTiming(word=w, start=s, end=e) for w, s, e in synthesis.words],
            expression=job.expression,
        ))
        now = time.monotonic()
        start = max(now, state.played[-1].end) if state.played else now
        state.played.append(_Played(index, synthesis.text, synthesis.words, start,
                                    synthesis.duration))
        self.spoken += 1
        self.audio_s += synthesis.duration

    # ------------------------------------------------------------------ interruptions

    async def _interrupt(self, interrupt: Interrupt) -> None:
        turn = interrupt.target_turn if interrupt.target_turn is not None else self._current
        state = self._turns.get(turn)
        if state is None:
            if turn is not None:  # nothing of it said yet: nothing of it will be
                self._turn(turn).cut = True
            return
        if state.cut:
            return
        now = time.monotonic()
        playing = bool(state.played) and now < state.played[-1].end
        if not playing and state.queued == 0:
            state.cut = True  # nothing is being said any more: nothing to cut, nor to come
            return
        state.cut = True
        self.cuts += 1
        dropped = self._drop(turn)
        heard: list[str] = []
        unheard: list[str] = []
        index, at = -1, 0.0
        for sentence in state.played:
            if sentence.end <= now:
                heard.append(sentence.text)
                index, at = sentence.index, sentence.duration
            elif sentence.start <= now:
                index, at = sentence.index, now - sentence.start
                said = [w for w, _, end in sentence.words if end <= at]
                heard.extend(said)
                rest = [w for w, _, end in sentence.words if end > at]
                unheard.append(" ".join(rest) if sentence.words else sentence.text)
            else:
                unheard.append(sentence.text)
        in_hand = self._in_hand
        if in_hand is not None and in_hand.turn == turn:
            dropped.insert(0, in_hand.text)  # being synthesised: discarded when it comes back
        unheard.extend(normalize_text(text) for text in dropped)
        await self.publish(SpeechCut(
            turn=turn, spoken_text=" ".join(heard), unspoken_text=" ".join(unheard),
            sentence_index=index, at_seconds=round(at, 4), dropped=len(dropped),
            reason=interrupt.reason,
        ))

    def _drop(self, turn: int | None) -> list[str]:
        """Take the turn's waiting sentences out of the queue; their texts."""
        kept: list[_Job] = []
        dropped: list[str] = []
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job.turn == turn:
                dropped.append(job.text)
            else:
                kept.append(job)
        for job in kept:
            self._jobs.put_nowait(job)
        state = self._turns[turn]
        state.queued -= len(dropped)
        return dropped
