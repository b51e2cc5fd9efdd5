"""The message registry: every registered type survives msgpack and JSON, and every malformed
payload is reported as ``MessageError`` (never another exception)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.messages import (
    EMOTION_LABELS,
    MESSAGE_TYPES,
    ActorError,
    AudioFrame,
    BehaviorObservation,
    EmotionEstimate,
    Entity,
    EvidenceRef,
    Interrupt,
    Message,
    MessageError,
    Metric,
    MissionEvent,
    MissionEventKind,
    ModalityEstimate,
    OperatorState,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    TrainerCommand,
    TrainerControl,
    Transcript,
    TwinDecision,
    TwinUtterance,
    VideoThumbnail,
    Viseme,
    Word,
    WordTiming,
    decode,
    encode,
    from_json,
    message_type,
    tag_of,
    to_json,
)

pytestmark = pytest.mark.unit

# ---------------------------------------------------------------------------- strategies

# No NaN (NaN != NaN) and no infinity (JSON has neither; msgspec writes them as null).
floats = st.floats(allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
texts = st.text(max_size=20)
small_bytes = st.binary(max_size=64)
float_dicts = st.dictionaries(texts, floats, max_size=5)
turns = st.none() | st.integers(min_value=0, max_value=10_000)


def literal(alias: Any) -> st.SearchStrategy[str]:
    """Any value of a ``Literal[...]`` alias."""
    return st.sampled_from(typing.get_args(alias))


words = st.builds(Word, word=texts, start=floats, end=floats, probability=floats)
entities = st.builds(Entity, kind=texts, text=texts, heard=texts, start=st.integers(0, 10_000),
                     end=st.integers(0, 10_000), confidence=floats, known=st.booleans())
modalities = st.builds(
    ModalityEstimate,
    modality=st.sampled_from(["text", "voice", "face"]),
    probabilities=float_dicts,
    valence=floats,
    arousal=floats,
    confidence=floats,
    weight=floats,
    available=st.booleans(),
    features=float_dicts,
    note=texts,
)
visemes = st.builds(Viseme, viseme=texts, start=floats, duration=floats, weight=floats)
word_timings = st.builds(WordTiming, word=texts, start=floats, end=floats)
evidence_refs = st.builds(EvidenceRef, id=texts, source=texts, score=floats, text=texts)

# Per registered type, a strategy for each of its own fields (the envelope is added below).
FIELDS: dict[type[Message], dict[str, st.SearchStrategy[Any]]] = {
    AudioFrame: dict(
        pcm=small_bytes,
        sample_rate=ints,
        channels=ints,
        start=floats,
        stream=texts,
    ),
    SpeechStarted: dict(at=floats, stream=texts, continues=st.none() | turns),
    SpeechEnded: dict(at=floats, duration=floats, stream=texts, voice_end=floats,
                      lost=st.booleans()),
    Transcript: dict(
        text=texts,
        final=st.booleans(),
        words=st.lists(words, max_size=4),
        language=texts,
        confidence=floats,
        start=floats,
        end=floats,
        speaker=texts,
        typed=st.booleans(),
        backchannel=st.booleans(),
        speculative=st.booleans(),
        entities=st.lists(entities, max_size=3),
    ),
    Interrupt: dict(target_turn=turns, reason=texts),
    BehaviorObservation: dict(
        frame_t=floats,
        face_present=st.booleans(),
        blendshapes=float_dicts,
        head_yaw=floats,
        head_pitch=floats,
        head_roll=floats,
        gaze_x=floats,
        gaze_y=floats,
        blink=st.booleans(),
        blink_rate=floats,
        posture=float_dicts,
        expression=float_dicts,
    ),
    VideoThumbnail: dict(frame_t=floats, jpeg=small_bytes, width=ints, height=ints),
    EmotionEstimate: dict(
        label=st.sampled_from(EMOTION_LABELS),
        probabilities=float_dicts,
        valence=floats,
        arousal=floats,
        confidence=floats,
        modalities=st.lists(modalities, max_size=3),
        start=floats,
        end=floats,
        text=texts,
        agreement=st.none() | floats,
    ),
    OperatorState: dict(
        label=texts,
        valence=floats,
        arousal=floats,
        confidence=floats,
        trend=st.sampled_from(["improving", "steady", "worsening"]),
        shift=st.none() | texts,
        workload=floats,
        stress=floats,
        engagement=floats,
        shift_turn=turns,
        shift_utterance=texts,
        shift_twin_utterance=texts,
    ),
    MissionEvent: dict(
        kind=literal(MissionEventKind),
        mission=texts,
        mission_time=floats,
        name=texts,
        text=texts,
        priority=texts,
        facts=st.lists(texts, max_size=4),
        reason=texts,
    ),
    TrainerControl: dict(command=literal(TrainerCommand), argument=texts),
    TwinUtterance: dict(
        text=texts,
        index=ints,
        final=st.booleans(),
        intent=texts,
        expression=texts,
        confidence=floats,
    ),
    Speech: dict(
        text=texts,
        index=ints,
        final=st.booleans(),
        pcm=small_bytes,
        sample_rate=ints,
        visemes=st.lists(visemes, max_size=4),
        words=st.lists(word_timings, max_size=4),
        expression=texts,
    ),
    SpeechCut: dict(
        spoken_text=texts,
        unspoken_text=texts,
        sentence_index=ints,
        at_seconds=floats,
        dropped=ints,
        reason=texts,
    ),
    ActorError: dict(
        actor=texts,
        error=texts,
        recoverable=st.booleans(),
        action=st.sampled_from(["none", "restart", "degrade", "end"]),
    ),
    Metric: dict(
        name=texts,
        value=floats,
        unit=texts,
        labels=st.dictionaries(texts, texts, max_size=4),
    ),
    TwinDecision: dict(
        trigger=st.sampled_from(["question", "report", "command"]),
        intent=st.sampled_from(
            ["report", "answer", "recommend", "clarify", "acknowledge", "decline"]
        ),
        style=st.sampled_from(["brief", "standard", "explanatory"]),
        hedge=st.booleans(),
        confidence=floats,
        question=texts,
        reasons=st.lists(texts, max_size=4),
        evidence=st.lists(evidence_refs, max_size=3),
        expression=texts,
    ),
}

ENVELOPE: dict[str, st.SearchStrategy[Any]] = {
    "session": texts,
    "source": texts,
    "seq": ints,
    "t": floats,
    "turn": turns,
}

STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    cls: st.builds(cls, **ENVELOPE, **fields) for cls, fields in FIELDS.items()
}
any_message: st.SearchStrategy[Message] = st.one_of(*STRATEGIES.values())


def test_every_registered_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda cls: cls.__name__)
def test_strategy_draws_every_field(cls: type[Message]) -> None:
    """A field added to a type must get a strategy too (else only its default is tested)."""
    assert set(ENVELOPE) | set(FIELDS[cls]) == set(cls.__struct_fields__)


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_msgpack_and_json_round_trip(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[cls])
    assert type(message) is cls
    back = decode(encode(message))
    assert type(back) is cls
    assert back == message
    from_browser = from_json(to_json(message))
    assert type(from_browser) is cls
    assert from_browser == message


@settings(max_examples=100, deadline=None)
@given(message=any_message)
def test_encoding_carries_the_type_tag(message: Message) -> None:
    raw = msgspec.msgpack.decode(encode(message))
    assert raw["type"] == tag_of(type(message))
    assert msgspec.json.decode(to_json(message))["type"] == tag_of(type(message))


# ---------------------------------------------------------------------------- malformed input


def _packed(data: Any) -> bytes:
    return msgspec.msgpack.encode(data)


MALFORMED: dict[str, Any] = {
    "unknown type tag": {"type": "nope", "text": "hi"},
    "no type tag": {"text": "hi", "final": True},
    "wrong field type": {"type": "transcript", "text": 1, "final": True},
    "wrong nested field type": {
        "type": "transcript",
        "text": "hi",
        "final": True,
        "words": [{"word": "hi", "start": "soon", "end": 1.0}],
    },
    "missing required field": {"type": "transcript", "final": True},
    "literal out of range": {"type": "trainer_control", "command": "explode"},
    "not a map": [1, 2, 3],
    "a bare number": 42,
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_msgpack_is_a_message_error(payload: Any) -> None:
    with pytest.raises(MessageError):
        decode(_packed(payload))


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_json_is_a_message_error(payload: Any) -> None:
    with pytest.raises(MessageError):
        from_json(msgspec.json.encode(payload))


@pytest.mark.parametrize("junk", [b"", b"\xc1", b"\xff\xff\xff", b"not msgpack at all"])
def test_garbage_bytes_are_a_message_error(junk: bytes) -> None:
    with pytest.raises(MessageError):
        decode(junk)


@pytest.mark.parametrize("junk", ["", "{", "[1,", "not json", '{"type": "transcript"'])
def test_garbage_json_is_a_message_error(junk: str) -> None:
    with pytest.raises(MessageError):
        from_json(junk)


@settings(max_examples=100, deadline=None)
@given(message=any_message, data=st.data())
def test_truncated_msgpack_is_a_message_error(message: Message, data: st.DataObject) -> None:
    encoded = encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1), label="cut")
    with pytest.raises(MessageError):
        decode(encoded[:cut])


def test_unknown_tag_error_names_the_problem() -> None:
    with pytest.raises(MessageError, match="malformed message"):
        decode(_packed({"type": "nope"}))


# ---------------------------------------------------------------------------- registry


def test_only_video_features_and_metrics_are_droppable() -> None:
    droppable = {cls for cls in MESSAGE_TYPES.values() if cls.droppable}
    assert droppable == {BehaviorObservation, VideoThumbnail, Metric}
    assert Message.droppable is False


@pytest.mark.parametrize("tag", sorted(MESSAGE_TYPES))
def test_tag_and_type_round_trip(tag: str) -> None:
    cls = message_type(tag)
    assert cls is MESSAGE_TYPES[tag]
    assert tag_of(cls) == tag


def test_tags_are_unique_and_snake_case() -> None:
    tags = [tag_of(cls) for cls in MESSAGE_TYPES.values()]
    assert len(tags) == len(set(tags))
    assert all(tag == tag.lower() and " " not in tag for tag in tags)
    assert tag_of(Transcript) == "transcript"


def test_unknown_tag_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="'nope'"):
        message_type("nope")
