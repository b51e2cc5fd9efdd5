"""SpeechRecognizer: hears the operator — turn detection, barge-in and speech recognition.

In: ``AudioFrame`` (16 kHz mono, ~100 ms) of one stream; ``Speech`` and ``SpeechCut`` from the
twin's voice, to know when the twin is talking. Out: ``SpeechStarted`` / ``SpeechEnded`` (stream
times of the voice), partial ``Transcript``s while the operator speaks, the final ``Transcript``
(words with times and probabilities, confidence, the utterance's span) right after
``SpeechEnded``, ``Interrupt`` on barge-in, and ``Metric``s of the recogniser's delays.

When a turn ends: every 32 ms chunk goes through the streaming Silero VAD and the endpointer
(``actors.vad``). With ``end_of_turn: smart`` (the default) the pause that ends a turn depends on
whether the turn sounds and reads finished: once a pause reaches ``judge_ms`` the turn model
(Smart Turn) hears the utterance and its words are decoded (``actors.turn``); a turn judged
finished ends as soon as both have answered (after ``complete_pause_ms`` at least, longer for an
operator who goes on after such pauses), one judged unfinished after ``unsure_pause_ms``, one
trailing off ("and ...") after ``max_pause_ms``. With ``end_of_turn: silence`` every turn ends
after ``end_silence_ms``.

How the final comes fast: while the operator speaks, the audio so far is decoded every
``partial_interval_ms`` for partial transcripts. As soon as a pause reaches ``judge_ms`` (silence
mode: ``speculate_ms``), the utterance is decoded *as if* it had ended and published as a
``speculative`` transcript (the dialogue may start its reply on it); when the pause then ends the
turn, that result is the final transcript, published at once. If the operator goes on speaking,
it is dropped. Decoding runs in a worker thread, one at a time, never on the event loop.

Barge-in: while the twin is speaking (its ``Speech`` audio is still playing), operator voice that
lasts ``barge_in_min_ms`` is decoded at once: words that only acknowledge the twin ("okay",
"uh-huh", "copy": ``backchannels``) let it go on, and their turn's final transcript is marked
``backchannel`` (the twin does not answer it); a halt ("wait", "stop") publishes one ``Interrupt``
for the twin's turn at once, any other word once two decodes in a row have heard it, and so does
voice that goes on past ``backchannel_max_ms``. Shorter
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from actors.asr import Recognition, RecognizedWord, WhisperRecognizer
from actors.audio import SAMPLE_RATE, pcm_to_float
from actors.lexicon import Lexicon
from actors.turn import EndOfTurn, SmartTurn, load_smart_turn
from actors.vad import CHUNK, CHUNK_S, Endpointer, SileroVAD
from twin.actor import Actor, ActorFailed
from twin.entities import MissionValues
from twin.metrics import normalize_words

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
    hypotheses: int = Field(5, ge=1, le=16, description="with a mission: the beam keeps this "
                            "many hypotheses and the one whose words and word pairs the "
                            "mission's own text uses most wins beside the model's score "
                            "(actors/lexicon.py); 1: the model's best alone")
    language: str = "en"
    stream: str = Field("operator", description="which AudioFrame stream to hear")
    threshold: float = Field(0.5, gt=0, lt=1, description="VAD speech probability")
    min_speech_ms: int = Field(200, ge=32, description="voice that starts a turn (a one-"
                               "syllable \"Wait\" holds 200-250 ms above the threshold)")
    end_of_turn: Literal["smart", "silence"] = Field(
        "smart", description="smart: the pause that ends a turn depends on whether it sounds and "
        "reads finished (the turn model, the words, the operator's habits; see actors.turn); "
        "silence: a fixed pause of end_silence_ms")
    end_silence_ms: int = Field(500, ge=96, description="silence mode: the pause that ends the "
                                "operator's turn")
    turn_model: str = Field("smart-turn-v3.2", description="smart mode: registry name or path "
                            "of the Smart Turn .onnx model")
    judge_ms: int = Field(100, ge=32, description="smart mode: the pause at which the turn model "
                          "judges whether the operator has finished (and again at twice that "
                          "if not) and the words so far are decoded")
    complete_pause_ms: int = Field(100, ge=32, description="smart mode: the pause that ends a "
                                   "turn judged finished (longer for an operator who goes on "
                                   "after pauses that long)")
    unsure_pause_ms: int = Field(800, ge=32, description="smart mode: the pause that ends a "
                                 "turn judged unfinished")
    max_pause_ms: int = Field(2000, ge=32, description="smart mode: the pause that ends any "
                              "turn, even one whose words trail off (\"and\", \"uh\")")
    complete_at: float = Field(0.5, gt=0, lt=1, description="smart mode: the turn model's "
                               "P(finished) from which a turn counts as finished")
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
    rejoin_ms: int = Field(1500, ge=0, description="voice that starts again within this pause "
                           "after a turn ended goes on with that turn: its reply is withdrawn "
                           "(cut, if the twin had begun it) and the new turn's transcript holds "
                           "both; 0: never")
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


def requested_words(text: str, backchannels: Sequence[str] = BACKCHANNELS) -> set[str]:
    """The words of ``text``, the start of what the operator is saying while the twin speaks,
    that do not acknowledge it, but for the last (the last word of a decode cut mid-word is often
    a wrong one: "okay, go" of "okay, got it")."""
    known = {word for phrase in backchannels for word in phrase.lower().split()}
    words = re.findall(r"[a-z]+(?:[-'][a-z]+)*", text.lower())
    return {word for word in words[:-1] if word not in known}


def halts(text: str) -> bool:
    """Whether ``text`` holds a word that stops a speaker at once ("wait", "stop")."""
    return any(word in _HALTS for word in re.findall(r"[a-z]+", text.lower()))


def _title(word: str) -> str:
    """BULLDOG -> Bulldog; an acronym (three letters or fewer: MSR, FOB) stays as it is."""
    return word if len(word) <= 3 else word.title()


def _succeeded(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


@dataclass
class _Ended:
    """A turn that ended lately: the operator may go on with it."""

    utterance: _Utterance
    voice_end: float  # stream time
    audio: list[np.ndarray[Any, np.dtype[np.float32]]]  # its audio, then what came after it
    backchannel: bool  # an "okay" to the twin: no reply of its own to withdraw
    recognition: Recognition  # its words


@dataclass
class _Utterance:
    turn: int
    start: float  # stream time of the first voiced chunk
    audio_start: float  # stream time of the first buffered sample (start - pre-roll)
    interrupted: bool = False
    speculation: tuple[float, asyncio.Task[Recognition]] | None = None  # (voice end, decode)
    told: float | None = None  # the voice end of the speculation published
    partial_task: asyncio.Task[None] | None = None
    judgement: tuple[float, asyncio.Task[float]] | None = None  # (voice end, P(finished))
    judged_again: float | None = None  # the voice end whose pause was judged a second time
    watch: asyncio.Task[None] | None = None  # ends the turn as soon as the pause is judged
    last_partial: float = 0.0  # stream time of the last partial decode
    # while the twin speaks: the decode of the voice so far (voiced seconds then, the decode)
    listening: tuple[float, asyncio.Task[Recognition]] | None = None
    over_twin: bool = False  # began while the twin was speaking
    # a turn the operator went on with: the words heard before the pause, and the stream time
    # from which this turn's own audio is decoded if need be (Whisper given both parts at once
    # now and then drops the first: "Casualty in BULLDOG 3. Can we get a helicopter in?" came
    # out as the question alone)
    earlier: Recognition | None = None
    own_start: float | None = None
    requested: set[str] = field(default_factory=set)  # what the last decode heard asked


class SpeechRecognizer(Actor):
    """Turn detection, barge-in and recognition for one audio stream."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (AudioFrame, Speech, SpeechCut)
    Settings: ClassVar[type[BaseModel]] = SpeechSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        from twin.models import REGISTRY

        if not isinstance(settings, SpeechSettings):
            return ()
        models = [settings.model]
        if settings.end_of_turn == "smart":
            models.append(settings.turn_model)
        return tuple(model for model in models if model in REGISTRY)

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
        self.turn_model: SmartTurn | None = None
        self.values: MissionValues | None = None  # the mission's grids, frequencies, callsigns
        self.end_of_turn = EndOfTurn(
            complete_pause_ms=settings.complete_pause_ms,
            unsure_pause_ms=settings.unsure_pause_ms, max_pause_ms=settings.max_pause_ms,
            complete_at=settings.complete_at)
        # the last turn's end, until the twin speaks: (stream time of its voice end, whether it
        # was judged finished)
        self._last_end: tuple[float, bool] | None = None
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
        self._lately: _Ended | None = None  # the last turn, while the operator may go on with it
        self._decoder = asyncio.Lock()  # one decode at a time
        self._hearing = asyncio.Lock()  # the audio's chunks, or an end decided between them
        self._twin_turn: int | None = None
        self._twin_until = 0.0  # wall time when the twin's queued speech ends

    # ------------------------------------------------------------------ lifecycle

    async def recover(self, history: Sequence[Message]) -> None:
        turns = [m.turn for m in history if m.turn is not None]
        self.turn = max(turns, default=0)
        # A turn the crash cut (begun, never ended): close it, so that nothing waits for it
        # (the twin holds its reports while the operator speaks), and let the twin ask again.
        # (Every turn that ends gets a final transcript, so a last turn without one was cut.)
        begun = [m for m in history if isinstance(m, SpeechStarted)]
        if not begun or any(isinstance(m, Transcript) and m.final and m.turn == begun[-1].turn
                            for m in history):
            return
        cut = begun[-1]
        if not any(isinstance(m, SpeechEnded) and m.turn == cut.turn for m in history):
            await self.publish(SpeechEnded(at=cut.at, duration=0.0, stream=cut.stream,
                                           turn=cut.turn, voice_end=time.time(), lost=True))
        await self.publish(Transcript(text="", final=True, confidence=0.0, turn=cut.turn))

    async def on_start(self) -> None:
        config = self.config
        try:
            self.vad = await asyncio.to_thread(SileroVAD)
            self.recognizer = await asyncio.to_thread(
                WhisperRecognizer, config.model, compute_type=config.compute_type,
                cpu_threads=config.cpu_threads, beam_size=config.beam_size,
                language=config.language, allow_download=config.allow_download,
                vocabulary=", ".join(self.vocabulary()), hypotheses=config.hypotheses)
            if config.end_of_turn == "smart":
                self.turn_model = await asyncio.to_thread(load_smart_turn, config.turn_model)
        except Exception as error:  # a missing model or library: say which and how to fix
            raise ActorFailed(str(error)) from None
        if self.session.mission is not None:  # its grids, frequencies, callsigns and words
            try:
                self.values = MissionValues.from_mission(self.session.mission)
                self.recognizer.lexicon = Lexicon.from_mission(self.session.mission)
            except OSError as error:  # the notes went away: heard words only
                await self.report_error(error)
        # warm up: the first real decode should not pay for lazy initialisation
        await asyncio.to_thread(self.recognizer.recognize, np.zeros(SAMPLE_RATE, np.float32))

    def vocabulary(self) -> list[str]:
        """The words given to the recogniser: the configured ones, then the mission's."""
        words = list(self.config.vocabulary)
        if self.config.mission_vocabulary and self.session.mission is not None:
            words += mission_vocabulary(self.session.mission)
        return list(dict.fromkeys(words))[:MAX_VOCABULARY_WORDS]

    def on_health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"turn": self.turn, "in_turn": self._utterance is not None}
        if self.turn_model is not None:
            health["end_of_turn"] = self.end_of_turn.describe()
        return health

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: Message) -> None:
        if isinstance(message, AudioFrame):
            if message.stream == self.config.stream:
                await self._hear(message)
        elif isinstance(message, Speech):
            self._last_end = None  # the twin answers: what the operator says next replies to it
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
        async with self._hearing:
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
        utterance = self._utterance
        pause = self.endpointer.silence_ms(t)
        ending = False  # whether this pause, if it lasts, ends the turn as a finished one
        if utterance is not None:
            await self._speculative(utterance)
        if utterance is not None and self.turn_model is not None:
            complete, words = self._judged(utterance), self._words(utterance)
            wait = self.end_of_turn.wait_ms(complete, words)
            self.endpointer.end_silence = wait / 1000
            ending = words is not None and wait <= self.end_of_turn.complete_wait()
        last_voice = self.endpointer.last_voice
        events = self.endpointer.push(probability, t)
        if ending and self.endpointer.last_voice > last_voice and self.endpointer.in_turn:
            # the voice went on after a pause judged the end: one of this operator's habits
            # (a turn ended there would have ended too early)
            self.end_of_turn.went_on(pause)
        if utterance is not None:
            self._audio.append(chunk)
        else:
            self._history = np.concatenate([self._history, chunk])[-self._keep:]
            lately = self._lately
            if lately is not None and (t - lately.voice_end) * 1000 <= self.config.rejoin_ms:
                lately.audio.append(chunk)  # the pause after it, in case they go on
            else:
                self._lately = None
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
        if self.turn_model is not None and silence >= self.config.judge_ms:
            self._judge(utterance, silence)
        # smart mode: the words decide the end as much as the pause, so decode at once
        speculate = self.config.judge_ms if self.turn_model is not None else (
            self.config.speculate_ms)
        if silence >= speculate:
            voice_end = self.endpointer.last_voice
            if utterance.speculation is None or utterance.speculation[0] != voice_end:
                task = asyncio.create_task(self._recognise(utterance, until=voice_end + TAIL_S))
                utterance.speculation = (voice_end, task)
        elif silence == 0 and self._partial_due(utterance, now):
            utterance.last_partial = now
            utterance.partial_task = asyncio.create_task(self._partial(utterance, until=now))

    # ------------------------------------------------------------------ end of turn

    def _judge(self, utterance: _Utterance, pause_ms: float) -> None:
        """Ask the turn model whether the operator has finished: at ``judge_ms`` of pause, and
        once more at twice that if it said no then (a finished turn often sounds so only once
        the pause has lasted a little)."""
        voice_end = self.endpointer.last_voice
        judgement = utterance.judgement
        if judgement is not None and judgement[0] == voice_end:
            again = (pause_ms >= 2 * self.config.judge_ms and utterance.judged_again != voice_end
                     and _succeeded(judgement[1])
                     and judgement[1].result() < self.end_of_turn.complete_at)
            if not again:
                return
            utterance.judged_again = voice_end
        assert self.turn_model is not None
        audio = self._utterance_audio(utterance)
        utterance.judgement = (voice_end, asyncio.create_task(
            asyncio.to_thread(self.turn_model, audio)))
        utterance.watch = asyncio.create_task(self._end_when_judged(utterance))

    def _judged(self, utterance: _Utterance) -> float | None:
        """The turn model's P(finished) for the current pause, once it has answered."""
        judgement = utterance.judgement
        if judgement is None or judgement[0] != self.endpointer.last_voice:
            return None
        return judgement[1].result() if _succeeded(judgement[1]) else None

    async def _end_when_judged(self, utterance: _Utterance) -> None:
        """End the turn as soon as the pause is judged (the turn model and the words), if the
        audio heard so far already holds the pause that ends it, not at the next frame."""
        assert utterance.judgement is not None
        voice_end, judging = utterance.judgement
        await asyncio.wait([judging])
        speculation = utterance.speculation
        if speculation is None or speculation[0] != voice_end:
            return  # the words are not being decoded at this pause: the next chunk decides
        await asyncio.wait([speculation[1]])
        async with self._hearing:
            endpointer = self.endpointer
            if (self._utterance is not utterance or not endpointer.in_turn
                    or endpointer.last_voice != voice_end):
                return  # over already, or the voice went on
            await self._speculative(utterance)
            wait = self.end_of_turn.wait_ms(self._judged(utterance), self._words(utterance))
            endpointer.end_silence = wait / 1000
            if endpointer.silence_ms(self._pending_t) >= wait:
                event = endpointer.close()
                await self._ended(event.at, event.duration)

    def _words(self, utterance: _Utterance) -> str | None:
        """The words of the utterance up to the current pause, once decoded."""
        speculation = utterance.speculation
        if (speculation is not None and speculation[0] == self.endpointer.last_voice
                and _succeeded(speculation[1])):
            return speculation[1].result().text
        return None

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
        last_end = self._last_end
        if (self.turn_model is not None and last_end is not None and last_end[1]
                and (at - last_end[0]) * 1000 < self.end_of_turn.max_pause):
            # they went on after a turn judged finished, before the twin said anything: that
            # end came too early
            self.end_of_turn.went_on((at - last_end[0]) * 1000)
        lately, self._lately = self._lately, None
        if lately is not None and (at - lately.voice_end) * 1000 <= self.config.rejoin_ms:
            # they go on with the turn that just ended: hear it whole, from its start
            self._audio = lately.audio
            self._history = np.zeros(0, np.float32)
            before = lately.utterance
            self._utterance = _Utterance(
                self.turn, before.start, before.audio_start, last_partial=now,
                over_twin=self._twin_speaking(), earlier=lately.recognition,
                own_start=max(lately.voice_end, at - self.config.pre_roll_ms / 1000))
            if not lately.backchannel:  # the reply to the first part is not to be said
                await self.publish(Interrupt(target_turn=before.turn, reason="operator went on",
                                             turn=self.turn))
            await self.publish(SpeechStarted(at=round(at, 3), stream=self.config.stream,
                                             turn=self.turn, continues=before.turn))
            return
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
        words, complete = self._words(utterance), self._judged(utterance)
        wait = self.endpointer.end_silence * 1000
        finished = self.turn_model is not None and words is not None and (
            self.end_of_turn.wait_ms(complete, words) <= self.end_of_turn.complete_wait())
        self._last_end = (at, finished)
        if utterance.judgement is not None:
            utterance.judgement[1].cancel()
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
            recognition = await self._recognise(utterance, until=at + TAIL_S)
            reused = False
        heard, self._audio = self._audio, []
        self._history = np.zeros(0, np.float32)
        if utterance.listening is not None:
            utterance.listening[1].cancel()
        backchannel = (utterance.over_twin and not utterance.interrupted
                       and is_backchannel(recognition.text, self.config.backchannels))
        if self.config.rejoin_ms and at - utterance.start < self.config.max_turn_s / 2:
            # they may go on with it
            self._lately = _Ended(utterance, at, heard, backchannel, recognition)
        if not utterance.interrupted and self._twin_speaking() and (
                halts(recognition.text) or (utterance.listening is not None and not backchannel
                                            and recognition.text.strip() != "")):
            # over before its words were known: a short request, or a "stop" however short
            await self._interrupt(utterance, "barge-in")
        await self.publish(self._transcript(utterance, recognition, at, final=True,
                                            backchannel=backchannel))
        delay = (time.time() - ended_wall) * 1000
        await self.publish(Metric(name="asr_final_after_end_ms", value=round(delay, 1),
                                  unit="ms", turn=utterance.turn,
                                  labels={"speculative": str(reused).lower()}))
        if self.turn_model is not None:  # why the turn ended when it did
            await self.publish(Metric(name="end_of_turn_wait_ms", value=round(wait), unit="ms",
                                      turn=utterance.turn, labels={
                                          "finished": "-" if complete is None
                                          else f"{complete:.2f}",
                                          "words": "-" if words is None else words[-40:],
                                          "usual_wait_ms": str(round(
                                              self.end_of_turn.complete_wait()))}))

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

    async def _recognise(self, utterance: _Utterance, until: float | None = None) -> Recognition:
        """The words of the utterance up to stream time ``until`` (all heard so far if None).
        A turn the operator went on with is decoded whole (the context mends a short first
        part: "Yeah." heard alone as "Yeah. Yeah. Yeah."), unless that decode leaves out most
        words heard before the pause: then it is those words, then its own audio's."""
        audio = self._utterance_audio(utterance, until)
        whole = await self._decode(audio)
        if utterance.own_start is None or _holds(whole, utterance.earlier):
            return whole
        shift = utterance.own_start - utterance.audio_start
        own = await self._decode(audio[round(shift * SAMPLE_RATE):])
        return _joined(utterance.earlier, own, shift)

    async def _speculative(self, utterance: _Utterance) -> None:
        """Publish the speculative decode, once it is done: what the final transcript will say
        if the turn ends at this pause (the dialogue may start its reply on it). Not over the
        twin's voice: an "okay" there asks for no reply."""
        speculation = utterance.speculation
        if (speculation is None or speculation[0] != self.endpointer.last_voice
                or utterance.told == speculation[0] or utterance.over_twin
                or not _succeeded(speculation[1]) or not speculation[1].result().text):
            return
        utterance.told = speculation[0]
        await self.publish(self._transcript(utterance, speculation[1].result(), speculation[0],
                                            final=False, speculative=True))

    def _transcript(self, utterance: _Utterance, recognition: Recognition, end: float, *,
                    final: bool, speculative: bool = False,
                    backchannel: bool = False) -> Transcript:
        offset = utterance.audio_start
        words = [Word(word=w.word, start=round(offset + w.start, 3),
                      end=round(offset + w.end, 3), probability=round(w.probability, 3))
                 for w in recognition.words]
        return Transcript(
            text=recognition.text, final=final, speculative=speculative,
            language=recognition.language, backchannel=backchannel,
            confidence=round(recognition.confidence, 3), start=round(utterance.start, 3),
            end=round(end, 3), speaker=self.config.stream, turn=utterance.turn, words=words,
            entities=self.values.find(recognition.text, words) if self.values else [])

    async def _partial(self, utterance: _Utterance, until: float) -> None:
        recognition = await self._recognise(utterance, until)
        if self._utterance is utterance and recognition.text:
            await self.publish(Transcript(
                text=recognition.text, final=False, language=recognition.language,
                confidence=round(recognition.confidence, 3), start=round(utterance.start, 3),
                end=round(until, 3),
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
            # a halt at once; another request once two decodes in a row hear it (a decode of a
            # third of a second mishears: "copy that" came out as a request once in many runs)
            requested = requested_words(words, config.backchannels)
            if halts(words) or requested & utterance.requested:
                await self._interrupt(utterance, "barge-in")
                return
            utterance.requested = requested
        if listening is None or listening[1].done():
            # the voice so far (again, while it says nothing yet but "okay", "cop"...)
            utterance.listening = (voiced, asyncio.create_task(self._recognise(utterance)))

    async def _interrupt(self, utterance: _Utterance, reason: str) -> None:
        utterance.interrupted = True
        self._twin_until = 0.0
        await self.publish(Interrupt(target_turn=self._twin_turn, reason=reason,
                                     turn=utterance.turn))


def _holds(whole: Recognition, earlier: Recognition | None) -> bool:
    """Whether ``whole`` holds at least half the distinct words of ``earlier``."""
    before = set(normalize_words(earlier.text)) if earlier is not None else set()
    return len(before & set(normalize_words(whole.text))) * 2 >= len(before)


def _joined(earlier: Recognition | None, later: Recognition, shift: float = 0.0) -> Recognition:
    """``earlier``'s words, then ``later``'s (whose times count from ``shift`` seconds in)."""
    moved = [RecognizedWord(w.word, w.start + shift, w.end + shift, w.probability)
             for w in later.words]
    if earlier is None or not earlier.text:
        return Recognition(later.text, moved, later.confidence, later.language,
                           later.no_speech_probability)
    if not later.text:
        return earlier
    words = [*earlier.words, *moved]
    confidence = (float(np.mean([w.probability for w in words])) if words
                  else min(earlier.confidence, later.confidence))
    return Recognition(f"{earlier.text} {later.text}", words, confidence, later.language,
                       later.no_speech_probability)
