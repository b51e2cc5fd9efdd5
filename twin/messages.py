"""Every message that crosses the bus, and the registry that (de)serialises them.

A message is a frozen, tagged ``msgspec.Struct``. All share the envelope ``session, source, seq,
t, turn``: the publishing actor stamps the first four (see ``twin.actor.Actor.publish``); the
``turn`` ties together everything that belongs to one operator turn, so each stage's delay can be
read from the log.

Messages leave and enter the process only through the registry below: ``encode``/``decode`` use
msgpack (the bus and the session log), ``to_json``/``from_json`` JSON (the browser). Decoding is
by the type tag, never by importing a name found in the data; an unknown tag or a malformed payload
raises ``MessageError``, which a reader can count and skip.

``droppable`` marks the types a full subscriber queue may drop (video features under load); speech
and dialogue never are.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal, TypeAlias, Union

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """The envelope every bus message carries."""

    session: str = ""
    source: str = ""
    seq: int = 0
    t: float = 0.0  # wall-clock time of publication (seconds since the epoch)
    turn: int | None = None  # operator turn this message belongs to, if any

    droppable: ClassVar[bool] = False


# ---------------------------------------------------------------------------- hearing


class AudioFrame(Message, frozen=True, kw_only=True, tag="audio_frame"):
    """About 100 ms of 16-bit little-endian PCM from a microphone, a file or a scripted voice."""

    pcm: bytes
    sample_rate: int = 16000
    channels: int = 1
    start: float = 0.0  # stream time of the first sample, seconds since the stream began
    stream: str = "operator"


class SpeechStarted(Message, frozen=True, kw_only=True, tag="speech_started"):
    """Voice activity began (stream time of its first frame, including no pre-roll)."""

    at: float
    stream: str = "operator"
    continues: int | None = None
    """The operator turn this one goes on with: they spoke again soon after its end was
    decided. That turn's reply is withdrawn (an ``Interrupt`` for it: cut, if the twin had begun
    it); this turn's final transcript holds both."""


class SpeechEnded(Message, frozen=True, kw_only=True, tag="speech_ended"):
    """The operator's turn ended: voice stopped for the configured end-of-turn silence.

    ``t`` is when that was decided; ``voice_end`` is when the operator's voice really ended
    (wall-clock seconds: the end of the last voiced audio, ``at`` in stream time, mapped through
    the times its frames arrived), the anchor of every turn latency. 0 in logs from before it
    was recorded: then ``t`` stands in."""

    at: float
    duration: float
    stream: str = "operator"
    voice_end: float = 0.0
    lost: bool = False
    """The recogniser crashed during this turn: it is closed so that nothing waits for it, and
    its words are lost (an empty final transcript follows: the twin asks to say again)."""

    @property
    def anchor(self) -> float:
        """The true end of the operator's voice, or the decision time when not recorded."""
        return self.voice_end or self.t


class Word(msgspec.Struct, frozen=True, kw_only=True):
    """A recognised word with its times (stream seconds) and probability."""

    word: str
    start: float
    end: float
    probability: float = 1.0


class Entity(msgspec.Struct, frozen=True, kw_only=True):
    """A value said in a transcript (``twin.entities``): a grid, a frequency, a callsign or a time,
    written as the mission writes it."""

    kind: str  # grid, frequency, callsign, time
    text: str  # as the mission writes it: "4930 7102", "44.175", "BULLDOG 2"
    heard: str  # as the recogniser wrote it: "49307102", "bull vog two"
    start: int  # where ``heard`` is in the transcript's text (characters)
    end: int
    confidence: float = 1.0  # the recogniser's least sure word of it
    known: bool = True  # the mission holds this value (else only its shape)


class Transcript(Message, frozen=True, kw_only=True, tag="transcript"):
    """What the operator said: partial while they speak, final after ``SpeechEnded``."""

    text: str
    final: bool
    words: list[Word] = []
    language: str = "en"
    confidence: float = 0.0
    start: float = 0.0
    end: float = 0.0
    speaker: str = "operator"
    typed: bool = False
    """Typed by the operator or trainer (the page's text box, ``twin chat``), not heard: no
    recogniser words or confidence, and nothing to say again."""
    backchannel: bool = False
    """Said while the twin spoke, and only to acknowledge it ("okay", "copy"): it did not
    interrupt, and asks for no answer."""
    entities: list[Entity] = []
    """The grids, frequencies and callsigns said, as the mission writes them (final
    transcripts, when the recogniser knows the mission)."""
    speculative: bool = False
    """Not final: the whole utterance so far, decoded at a pause that may end the turn. If the
    turn ends there, the final transcript says the same; the dialogue may start its reply on
    it, saying nothing until the final comes."""


class Interrupt(Message, frozen=True, kw_only=True, tag="interrupt"):
    """The operator barged in: stop the twin's speech of ``target_turn``."""

    target_turn: int | None
    reason: str = "barge-in"


# ---------------------------------------------------------------------------- seeing and feeling


class BehaviorObservation(Message, frozen=True, kw_only=True, tag="behavior_observation"):
    """Features of one video frame: never the frame itself."""

    droppable: ClassVar[bool] = True

    frame_t: float  # stream time of the frame
    face_present: bool
    blendshapes: dict[str, float] = {}
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    blink: bool = False
    blink_rate: float = 0.0  # blinks per minute
    posture: dict[str, float] = {}
    # The small facial-expression model's probabilities over EMOTION_LABELS for the operator's
    # face in this frame (empty when the tracker runs without it, or no face)
    expression: dict[str, float] = {}


class VideoThumbnail(Message, frozen=True, kw_only=True, tag="video_thumbnail"):
    """A small JPEG of the operator for the console and the review: sent only when configured
    (``thumbnail_every_s``); by default no picture leaves the tracker."""

    droppable: ClassVar[bool] = True

    frame_t: float
    jpeg: bytes
    width: int
    height: int


EmotionLabel = Literal["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
EMOTION_LABELS: tuple[EmotionLabel, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
)


class ModalityEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """One modality's view of the operator's emotion, and its weight in the fusion."""

    modality: Literal["text", "voice", "face"]
    probabilities: dict[str, float]
    valence: float
    arousal: float
    confidence: float
    weight: float = 0.0
    available: bool = True
    # What the estimate rests on (e.g. z-scores against the operator's baseline, face coverage)
    features: dict[str, float] = {}
    note: str = ""  # why it is unavailable or weak (no face, silence, an error)


class EmotionEstimate(Message, frozen=True, kw_only=True, tag="emotion_estimate"):
    """The fused emotion for one utterance, with each modality's contribution."""

    label: str
    probabilities: dict[str, float]
    valence: float
    arousal: float
    confidence: float
    modalities: list[ModalityEstimate] = []
    start: float = 0.0
    end: float = 0.0
    text: str = ""  # the utterance (final transcript) this estimate is for
    agreement: float | None = None  # 0..1 between the weighted modalities; None with fewer than 2


class OperatorState(Message, frozen=True, kw_only=True, tag="operator_state"):
    """The operator's emotional state across turns: smoothed, with its trend and any shift."""

    label: str
    valence: float
    arousal: float
    confidence: float
    trend: Literal["improving", "steady", "worsening"] = "steady"
    shift: str | None = None  # e.g. "neutral->fearful" when an emotion shift was detected
    workload: float = 0.0
    stress: float = 0.0  # 0..1 from arousal, negative valence and fear/anger (see actors.emotion)
    engagement: float = 0.0  # 0..1 from face presence, words per turn and arousal
    # The shift's details: the operator utterance most associated with it, and what the twin
    # said just before that utterance
    shift_turn: int | None = None
    shift_utterance: str = ""
    shift_twin_utterance: str = ""


# ---------------------------------------------------------------------------- mission


MissionEventKind = Literal[
    "mission_started",
    "phase_started",
    "inject",
    "objective_met",
    "paused",
    "resumed",
    "mission_ended",
    "knowledge",
]


class MissionEvent(Message, frozen=True, kw_only=True, tag="mission_event"):
    """Something happened in the mission: a phase began, an inject fired, it ended."""

    kind: MissionEventKind
    mission: str
    mission_time: float
    name: str = ""  # phase id, inject id, objective id
    text: str = ""
    priority: str = "routine"
    facts: list[str] = []
    # why it happened now when not by the clock: "the operator said 'fuel' (turn 3)", "the
    # phase's exit condition held", "trainer" (empty: on time)
    reason: str = ""


TrainerCommand = Literal["pause", "resume", "skip_phase", "inject", "end"]


class TrainerControl(Message, frozen=True, kw_only=True, tag="trainer_control"):
    """A trainer steers the running mission."""

    command: TrainerCommand
    argument: str = ""  # inject id for "inject", a reason for "end"


# ---------------------------------------------------------------------------- thinking and speaking


class TwinUtterance(Message, frozen=True, kw_only=True, tag="twin_utterance"):
    """One sentence of the twin's reply, streamed as the dialogue produces it."""

    text: str
    index: int  # sentence number within the reply
    final: bool  # the last sentence of the reply
    intent: str = "answer"
    expression: str = "calm"
    confidence: float = 1.0


class Viseme(msgspec.Struct, frozen=True, kw_only=True):
    """A mouth shape held from ``start`` for ``duration`` seconds of the speech audio."""

    viseme: str
    start: float
    duration: float
    weight: float = 1.0


class WordTiming(msgspec.Struct, frozen=True, kw_only=True):
    word: str
    start: float
    end: float


class Speech(Message, frozen=True, kw_only=True, tag="speech"):
    """One synthesised sentence: its audio, viseme track and word timings, in step."""

    text: str
    index: int
    final: bool
    pcm: bytes
    sample_rate: int = 22050
    visemes: list[Viseme] = []
    words: list[WordTiming] = []
    expression: str = "calm"


class SpeechCut(Message, frozen=True, kw_only=True, tag="speech_cut"):
    """The twin's speech of ``turn`` was interrupted: what the operator heard, and where it stopped.

    Playback is assumed to start when a ``Speech`` is published, its sentences back to back, so
    ``at_seconds`` is the time into sentence ``sentence_index`` at the interrupt (its full length
    if it had finished; ``sentence_index`` is -1 when no sentence had been published yet).
    """

    spoken_text: str  # what was heard: the finished sentences and the words already played
    unspoken_text: str = ""  # the rest: of the cut sentence and every dropped sentence
    sentence_index: int
    at_seconds: float
    dropped: int = 0  # sentences never published
    reason: str = "barge-in"


class EvidenceRef(msgspec.Struct, frozen=True, kw_only=True):
    """A knowledge passage a decision rests on: its id (``route_copper#3``), file, score, text."""

    id: str
    source: str
    score: float
    text: str  # trimmed to ~300 characters


class TwinDecision(Message, frozen=True, kw_only=True, tag="twin_decision"):
    """Why the twin says what it is about to say: decided before any LLM runs."""

    trigger: Literal["question", "report", "command"]
    intent: Literal["report", "answer", "recommend", "clarify", "acknowledge", "decline"]
    style: Literal["brief", "standard", "explanatory"]
    hedge: bool
    confidence: float
    question: str = ""
    reasons: list[str] = []
    evidence: list[EvidenceRef] = []
    expression: str = "calm"  # calm / concerned / positive / urgent (for the avatar)


# ---------------------------------------------------------------------------- runtime


class ActorError(Message, frozen=True, kw_only=True, tag="actor_error"):
    """An actor failed. The runtime's policy restarts it, degrades the session or ends it."""

    actor: str
    error: str
    recoverable: bool
    action: Literal["none", "restart", "degrade", "end"] = "none"


class Metric(Message, frozen=True, kw_only=True, tag="metric"):
    """A measured figure: a stage delay, a drop count, a rate."""

    droppable: ClassVar[bool] = True

    name: str
    value: float
    unit: str = ""
    labels: dict[str, str] = {}


AnyMessage: TypeAlias = Union[  # noqa: UP007 - msgspec needs a real Union of the tagged types
    AudioFrame,
    SpeechStarted,
    SpeechEnded,
    Transcript,
    Interrupt,
    BehaviorObservation,
    VideoThumbnail,
    EmotionEstimate,
    OperatorState,
    MissionEvent,
    TrainerControl,
    TwinUtterance,
    Speech,
    SpeechCut,
    ActorError,
    Metric,
    TwinDecision,
]


# ---------------------------------------------------------------------------- registry


class MessageError(ValueError):
    """A payload that is not a known, well-formed message."""


def _tag(cls: type[Message]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


MESSAGE_TYPES: dict[str, type[Message]] = {
    _tag(cls): cls for cls in typing.get_args(AnyMessage)
}


def tag_of(cls: type[Message]) -> str:
    """The type tag of a message class, as written in the log and sent to the browser."""
    return _tag(cls)


def message_type(tag: str) -> type[Message]:
    """The class registered for ``tag``."""
    try:
        return MESSAGE_TYPES[tag]
    except KeyError:
        raise MessageError(f"unknown message type {tag!r}") from None


_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder = msgspec.msgpack.Decoder(AnyMessage)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(AnyMessage)


def encode(message: Message) -> bytes:
    """msgpack bytes of a message (the bus and the session log)."""
    return _msgpack_encoder.encode(message)


def decode(data: bytes) -> Message:
    """A message from msgpack bytes; ``MessageError`` names what is wrong."""
    try:
        message: Message = _msgpack_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise MessageError(f"malformed message: {error}") from None
    return message


def to_json(message: Message) -> bytes:
    """JSON bytes of a message (the browser); ``bytes`` fields become base64 strings."""
    return _json_encoder.encode(message)


def from_json(data: bytes | str) -> Message:
    """A message from JSON; ``MessageError`` names what is wrong."""
    try:
        message: Message = _json_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise MessageError(f"malformed message: {error}") from None
    return message


def to_builtins(message: Message) -> dict[str, Any]:
    """A plain dict of the message, with its type tag (for printing and exports)."""
    data: dict[str, Any] = msgspec.to_builtins(message)
    return data
