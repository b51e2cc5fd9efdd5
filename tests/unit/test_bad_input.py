"""Bad input, systematically: random, cut short, out-of-range and huge inputs at every door the
twin opens to the outside — the message decoder (the bus and the log), the mission and config
loaders, the avatar gateway's WebSocket, the audio and the video sources.

Each either takes the input or refuses it with the error of its kind, naming the file or the
field (``MessageError``, ``ConfigError``, ``ProtocolError``, ``AudioError``, ``ActorFailed``):
nothing else escapes, no actor dies of it but the source given a file it cannot read (which
says which file), and what gets through lands in a session log that passes SQLite's integrity
check and reads back whole. How many cases each test tries is its ``max_examples``
(``pytest --hypothesis-show-statistics`` prints what a run did).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import itertools
import json
import math
import os
import sqlite3
import struct
import typing
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from actors.audio import MAX_RATE, MIN_RATE, SAMPLE_RATE, AudioError, Resampler, read_wav
from actors.recorder import Recorder
from actors.sources import WavSource
from actors.video import VideoRecorder, open_source
from avatar.access import ROLES
from avatar.gateway import AvatarGateway
from avatar.protocol import (
    CLOSE_UNAUTHORIZED,
    GATEWAY_FRAMES,
    MAX_AUDIO_BYTES,
    MAX_SAY_CHARS,
    Audio,
    Control,
    ErrorCode,
    Hello,
    Ping,
    ProtocolError,
    Say,
    parse,
)
from twin.actor import ActorFailed, SessionInfo
from twin.config import ConfigError, Mission, load_config, load_mission
from twin.log import LogReader, LogRecord, SessionLog
from twin.messages import (
    MESSAGE_TYPES,
    ActorError,
    AudioFrame,
    Message,
    MessageError,
    Metric,
    TrainerCommand,
    TrainerControl,
    Transcript,
    decode,
    encode,
    from_json,
)
from twin.testing import Harness

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MISSION_FILE = ROOT / "missions" / "route_clearance.yaml"
CONFIG_FILE = ROOT / "configs" / "default.yaml"
CODES = set(typing.get_args(ErrorCode))
INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # all that msgpack carries


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the files the fuzz cases write (hypothesis runs a test many times)."""
    return tmp_path_factory.mktemp("bad_input")


@pytest.fixture(scope="module")
def mission() -> Mission:
    return load_mission(MISSION_FILE)


def log_is_whole(path: Path) -> list[LogRecord]:
    """The log passes SQLite's integrity check and every row in it decodes."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    with LogReader(path) as reader:
        records = list(reader.records())
        assert reader.skipped == 0 and reader.damaged is None
    return records


scalars = (st.none() | st.booleans() | INT64 | st.floats() | st.text(max_size=20)
           | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# what YAML and JSON can hold (no bytes)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


# ---------------------------------------------------------------------------- the decoder

ENVELOPE: dict[str, st.SearchStrategy[Any]] = dict(
    session=st.text(max_size=8), source=st.text(max_size=8), seq=INT64, t=st.floats(),
    turn=st.none() | INT64)


def _carried(message: Message) -> bool:
    """Whether msgpack carries it (an int past 64 bits cannot come off the bus or the log)."""
    try:
        encode(message)
    except OverflowError:
        return False
    return True


messages = st.one_of(*(st.builds(cls, **ENVELOPE) for cls in MESSAGE_TYPES.values())
                     ).filter(_carried)


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A well-formed message's map with one field changed to any value, gone, or a field no
    message has added; and the name of the field changed."""
    data = msgspec.msgpack.decode(encode(draw(messages)))
    field: str | None = draw(st.sampled_from(sorted(data)))
    how = draw(st.sampled_from(["value", "gone", "extra"]))
    if how == "value":
        data[field] = draw(values)
    elif how == "gone":
        del data[field]
    else:
        data[draw(st.text(min_size=1, max_size=8))] = draw(values)
        field = None
    return msgspec.msgpack.encode(data), field


@pytest.fixture(scope="module")
def shared_log(scratch: Path) -> Iterator[SessionLog]:
    log = SessionLog.create(scratch / "decoded.db", {"session": "fuzz"})
    yield log
    log.close()
    log_is_whole(log.path)


_numbered = itertools.count()


def kept_by_the_log(log: SessionLog, message: Message) -> None:
    """``message`` is appended, and read back the same (under a source of its own: the log
    keeps one message per source, seq, time and type)."""
    source = f"{message.source}#{next(_numbered)}"
    message = msgspec.structs.replace(message, source=source)
    log.append([message])
    with LogReader(log.path) as reader:
        back = list(reader.records(source=source))
    assert len(back) == 1 and back[0].message is not None
    assert encode(back[0].message) == encode(message)  # (bytes: a NaN is not equal to itself)


@settings(max_examples=600, deadline=None)
@given(case=near_misses())
def test_a_message_with_one_field_wrong_is_read_or_refused_naming_the_field(
        case: tuple[bytes, str | None], shared_log: SessionLog) -> None:
    data, field = case
    try:
        message = decode(data)
    except MessageError as error:
        # "Expected `str`, got `int` - at `$.words[0].word`", "missing required field `text`";
        # a changed type tag makes the rest another type's fields
        assert field is None or field == "type" or field in str(error), (field, str(error))
        return
    kept_by_the_log(shared_log, message)


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=200) | values.map(msgspec.msgpack.encode)
       | st.builds(lambda tag, rest: msgspec.msgpack.encode({**rest, "type": tag}),
                   st.sampled_from(sorted(MESSAGE_TYPES)),
                   st.dictionaries(st.text(max_size=10), values, max_size=5)))
def test_any_bytes_are_a_message_or_a_message_error(data: bytes) -> None:
    try:
        message = decode(data)
    except MessageError as error:
        assert str(error).startswith("malformed message: ")
        return
    assert encode(decode(encode(message))) == encode(message)


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=200) | plain_values.map(lambda v: json.dumps(v))
       | st.builds(lambda tag, rest: json.dumps({**rest, "type": tag}),
                   st.sampled_from(sorted(MESSAGE_TYPES)),
                   st.dictionaries(st.text(max_size=10), plain_values, max_size=5)))
def test_any_text_is_a_message_or_a_message_error_from_json(text: str) -> None:
    try:
        from_json(text)
    except MessageError as error:
        assert str(error).startswith("malformed message: ")


@settings(max_examples=200, deadline=None)
@given(message=messages)
def test_the_log_keeps_any_message_the_decoder_reads_even_out_of_range_envelopes(
        message: Message, shared_log: SessionLog) -> None:
    """A time that is not a number, a turn or seq past SQLite's 64 bits: kept whole."""
    kept_by_the_log(shared_log, decode(encode(message)))


def test_huge_and_deeply_nested_payloads(tmp_path: Path) -> None:
    log = SessionLog.create(tmp_path / "huge.db", {"session": "huge"})
    huge = [AudioFrame(pcm=os.urandom(16 * 2**20), seq=1),  # 16 MB of audio in one frame
            Transcript(text="word " * 200_000, final=True, seq=2)]  # a megabyte of words
    for message in huge:
        assert decode(encode(message)) == message
    log.append(huge)
    log.close()
    assert [r.message for r in log_is_whole(tmp_path / "huge.db")] == huge
    for junk in (b"\x91" * 100_000 + b"\xc0", b"\xdf\xff\xff\xff\xff"):  # deep; a vast map
        with pytest.raises(MessageError):
            decode(junk)
    for text in ("[" * 100_000, '{"type": "metric", "labels": ' + '{"a": ' * 50_000):
        with pytest.raises(MessageError):
            from_json(text)


# ---------------------------------------------------------------------------- the loaders


def names_the_file(error: ConfigError, path: Path) -> None:
    """One line per problem, each starting with the file's path."""
    lines = str(error).split("\n")
    assert error.problems and len(lines) == len(error.problems)
    assert all(line.startswith(f"{path}: ") and line[len(f"{path}: "):] for line in lines)


yaml_texts = plain_values.map(lambda value: yaml.safe_dump(value, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | yaml_texts.map(str.encode))
def test_any_file_is_a_mission_and_a_config_or_a_config_error_naming_it(
        scratch: Path, content: bytes) -> None:
    path = scratch / "random.yaml"
    path.write_bytes(content)
    for load in (load_mission, load_config):
        try:
            load(path)
        except ConfigError as error:
            names_the_file(error, path)


Step = str | int


def _paths(value: Any, at: tuple[Step, ...] = ()) -> list[tuple[Step, ...]]:
    """Every place in a YAML document: each key of each mapping, each item of each list."""
    places: list[tuple[Step, ...]] = [at] if at else []
    if isinstance(value, dict):
        for key, item in value.items():
            places += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places += _paths(item, (*at, index))
    return places


def _dotted(at: tuple[Step, ...]) -> str:
    """A place as ConfigError spells it: ``phases[1].duration``."""
    text = ""
    for step in at:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def _document(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "knowledge" in data:  # written elsewhere: the notes by their full path
        data["knowledge"] = [str((path.parent / note).resolve()) for note in data["knowledge"]]
    return data


DOCUMENTS = {"mission": (_document(MISSION_FILE), load_mission),
             "config": (_document(CONFIG_FILE), load_config)}
# problems a change elsewhere makes: a reference to what was renamed, a time past a shortened end
CROSS_FILE = ("unknown", "duplicate id", "beyond the end", "cannot wait for itself", "repeat")


@st.composite
def one_change(draw: st.DrawFn, document: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``document`` with one value changed to any other, gone, or a key added; and where."""
    data = copy.deepcopy(document)
    at = draw(st.sampled_from(_paths(data)))
    parent: Any = data
    for step in at[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["value", "gone", "extra"]))
    if how == "value":
        parent[at[-1]] = draw(plain_values)
    elif how == "gone":
        del parent[at[-1]]
    elif isinstance(parent, dict):
        key = draw(st.text(min_size=1, max_size=8))
        parent[key] = draw(plain_values)
        at = (*at[:-1], key)
    else:
        parent.append(draw(plain_values))
        at = (*at[:-1], len(parent) - 1)
    return data, _dotted(at)


@pytest.mark.parametrize("kind", list(DOCUMENTS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_file_with_one_value_changed_is_read_or_refused_naming_the_field(
        scratch: Path, kind: str, data: st.DataObject) -> None:
    document, load = DOCUMENTS[kind]
    changed, where = data.draw(one_change(document), label="change")
    path = scratch / f"changed-{kind}.yaml"
    path.write_text(yaml.safe_dump(changed, allow_unicode=True), encoding="utf-8")
    try:
        load(path)
    except ConfigError as error:
        names_the_file(error, path)
        named = [field for field, _ in error.problems
                 if not field or field.startswith(where) or where.startswith(field)]
        crossed = [m for _, m in error.problems if any(word in m for word in CROSS_FILE)]
        assert named or crossed, (where, error.problems)


@pytest.mark.parametrize("kind", list(DOCUMENTS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_file_cut_short_is_read_or_refused_naming_it(scratch: Path, kind: str,
                                                       data: st.DataObject) -> None:
    source = MISSION_FILE if kind == "mission" else CONFIG_FILE
    content = source.read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(content) - 1), label="cut")
    folder = scratch / "cut"
    if not folder.exists():  # the notes where the mission says, beside the cut file
        folder.mkdir()
        (folder / "knowledge").symlink_to(MISSION_FILE.parent / "knowledge")
    path = folder / source.name
    path.write_bytes(content[:cut])
    try:
        DOCUMENTS[kind][1](path)
    except ConfigError as error:
        names_the_file(error, path)


@pytest.mark.parametrize(("text", "words"), [
    ("name: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("name: " + "{a: " * 3000 + "1" + "}" * 3000, "nested too deeply"),
    ("phases: [{duration: " + "9" * 5000 + "}]", "cannot be read"),  # past int's digit limit
    ("phases: [{id: p, title: t, duration: " + "9" * 400 + "}]", "too large to be a time"),
    ("knowledge: [" + "n" * 5000 + "]", "knowledge[0]: cannot open the file"),
    ('name: "two\\nlines"', 'got "two\\nlines"'),  # shown on one line
])
def test_found_by_fuzzing_each_is_a_config_error(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "found.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_mission(path)
    names_the_file(raised.value, path)
    assert words in str(raised.value)


# ---------------------------------------------------------------------------- the WebSocket

VALID_FRAMES: dict[str, dict[str, Any]] = {
    "hello": {"token": "not-the-token"},
    "control": {"command": "pause", "argument": ""},
    "audio": {"pcm": base64.b64encode(b"\x01\x00" * 160).decode(), "start": 0.5},
    "say": {"text": "What is the status?"},
    "ping": {"t": 1.5, "pad": 4},
}


@st.composite
def near_miss_frames(draw: st.DrawFn) -> tuple[str, str | None]:
    """A page's frame with one field changed to any value, gone, or an unknown one added; and
    the field."""
    op = draw(st.sampled_from(sorted(VALID_FRAMES)))
    frame: dict[str, Any] = {"op": op, **VALID_FRAMES[op]}
    field: str = draw(st.sampled_from(sorted(frame)))
    how = draw(st.sampled_from(["value", "gone", "extra"]))
    if how == "value":
        frame[field] = draw(plain_values)
    elif how == "gone":
        del frame[field]
    else:
        field = draw(st.text(min_size=1, max_size=8))
        frame[field] = draw(plain_values)
    return json.dumps(frame), field


well_formed_frames = st.one_of(
    st.builds(lambda t: json.dumps({"op": "hello", "token": t}), st.text(max_size=300)),
    st.builds(lambda c, a: json.dumps({"op": "control", "command": c, "argument": a}),
              st.sampled_from(typing.get_args(TrainerCommand)), st.text(max_size=600)),
    st.builds(lambda pcm, start: json.dumps({"op": "audio", "start": start,
                                             "pcm": base64.b64encode(pcm).decode()}),
              st.binary(max_size=4000), st.floats()),
    st.builds(lambda text: json.dumps({"op": "say", "text": text}), st.text(max_size=600)),
    st.builds(lambda t, pad: json.dumps({"op": "ping", "t": t, "pad": pad}),
              st.floats(), st.integers(min_value=-10, max_value=64)),
)
page_frames: st.SearchStrategy[str | bytes] = st.one_of(
    st.text(max_size=200), st.binary(max_size=100), plain_values.map(json.dumps),
    near_miss_frames().map(lambda case: case[0]), well_formed_frames,
    st.just("x" * 5000))  # over the gateway's limit in the live test


@settings(max_examples=1000, deadline=None)
@given(case=st.one_of(near_miss_frames(), page_frames.map(lambda frame: (frame, None)),
                      st.just((None, None))))
def test_any_frame_is_a_client_frame_or_a_protocol_error_naming_the_field(
        case: tuple[str | bytes | None, str | None]) -> None:
    data, field = case
    try:
        frame = parse(data, 4096)
    except ProtocolError as error:
        assert error.code in CODES and str(error)
        if error.code == "malformed" and field not in (None, "op") and "invalid frame" in str(
                error):
            assert field in str(error), (field, str(error))
        return
    assert isinstance(frame, (Hello, Control, Audio, Say, Ping))
    if isinstance(frame, Audio):
        assert len(frame.pcm) % 2 == 0 and len(frame.pcm) <= MAX_AUDIO_BYTES
        assert frame.start >= 0 and math.isfinite(frame.start)
    if isinstance(frame, Say):
        assert frame.text == frame.text.strip() and 0 < len(frame.text) <= MAX_SAY_CHARS


def test_text_no_socket_delivers_is_refused_too() -> None:
    """A lone surrogate: a socket never delivers one (it checks UTF-8), but parse is public."""
    with pytest.raises(ProtocolError) as raised:
        parse('{"op": "say", "text": "\ud800"}', 4096)
    assert raised.value.code == "malformed"


async def _talk(url: str, tokens: dict[str, str], role: str | None,
                frames: list[str | bytes], mark: float) -> None:
    """One page: a hello (``role`` None: the first frame is its hello), the frames, then a ping
    marked ``mark``; every frame that comes back is one the protocol knows. A page with no
    right hello is refused and closed; any other stays until its pong comes."""
    async with connect(url, max_size=None) as ws:
        try:
            if role is not None:
                await ws.send(json.dumps({"op": "hello", "token": tokens[role]}))
            for frame in frames:
                await ws.send(frame)
            await ws.send(json.dumps({"op": "ping", "t": mark}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert frame["type"] in GATEWAY_FRAMES or frame["type"] in MESSAGE_TYPES
                if frame["type"] == "error":
                    assert frame["code"] in CODES and frame["message"]
                if frame["type"] == "pong" and frame["t"] == mark:
                    assert role is not None
                    return
        except ConnectionClosed as closed:
            assert role is None, closed
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_UNAUTHORIZED


async def _too_big(url: str, tokens: dict[str, str], size: int) -> None:
    """A frame past the socket's own limit closes that socket; the next page is welcome."""
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"op": "hello", "token": tokens["viewer"]}))
        await ws.send("x" * size)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with connect(url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": tokens["viewer"]}))
        await ws.send(json.dumps({"op": "ping", "t": 7}))
        kinds = [json.loads(await asyncio.wait_for(ws.recv(), 20))["type"]]
        while kinds[-1] != "pong":  # the console so far comes between
            kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 20))["type"])
        assert kinds[0] == "welcome"


def well_formed_on_the_bus(message: Message) -> bool:
    """What a page may put on the bus, as the gateway must have checked it."""
    if isinstance(message, TrainerControl):
        return message.command in typing.get_args(TrainerCommand) and len(
            message.argument) <= 500
    if isinstance(message, Transcript):
        return message.typed and message.final and 0 < len(message.text) <= MAX_SAY_CHARS
    if isinstance(message, AudioFrame):
        return (len(message.pcm) % 2 == 0 and len(message.pcm) <= MAX_AUDIO_BYTES
                and message.sample_rate == SAMPLE_RATE and math.isfinite(message.start)
                and message.start >= 0)
    return isinstance(message, Metric) and message.name == "avatar_port"


async def _with_recorder(actor: Any, log: Path, body: Callable[[Harness], Any]) -> list[Message]:
    """``actor`` on a LocalBus with a probe and the real recorder writing ``log``; what the
    probe saw once ``body`` is done and everything is stopped."""
    harness = Harness(actor)
    recorder = Recorder(name="recorder", session=SessionInfo(id="fuzz", log_path=log))
    recorder.attach(harness.bus)
    await recorder.start()
    async with harness:
        await body(harness)
    await recorder.stop()
    assert not recorder.failed, recorder.failed
    return harness.probe.received


def test_the_gateway_survives_any_frames_from_pages_and_logs_only_well_formed_messages(
        tmp_path: Path, mission: Mission) -> None:
    log = tmp_path / "gateway.db"
    SessionLog.create(log, {"session": "fuzz"}).close()
    gateway = AvatarGateway({"port": 0, "max_message_bytes": 4096}, name="avatar",
                            session=SessionInfo(id="fuzz", mission=mission, secret="fuzz-secret",
                                                log_path=log))
    marks = itertools.count(1)
    pages_tried: list[int] = []

    async def pages(harness: Harness) -> None:
        url = gateway.url.replace("http://", "ws://") + "/ws"
        tokens = {str(role): token for role, token in gateway.access.tokens.items()}

        @settings(max_examples=60, deadline=None)
        @given(role=st.sampled_from([*ROLES, None]),
               frames=st.lists(page_frames, min_size=1, max_size=5))
        def page(role: str | None, frames: list[str | bytes]) -> None:
            pages_tried.append(len(frames))
            asyncio.run(asyncio.wait_for(_talk(url, tokens, role, frames, next(marks)), 60))

        await asyncio.to_thread(page)  # the pages in a thread: the gateway's loop runs on
        await _too_big(url, tokens, 4 * 4096 + 1)
        assert gateway.failed is None and gateway.started

    received = asyncio.run(_with_recorder(gateway, log, pages))
    print(f"{len(pages_tried)} pages sent {sum(pages_tried)} frames")
    assert len(pages_tried) >= 60
    assert not [m for m in received if isinstance(m, ActorError)]
    odd = [m for m in received if not well_formed_on_the_bus(m)]
    assert not odd, odd[:3]
    assert len(log_is_whole(log)) == len(received)


# ---------------------------------------------------------------------------- audio


def wav(rate: int = 16000, channels: int = 1, width: int = 2, frames: int = 1600,
        data: bytes | None = None) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(width)
        file.setframerate(rate)
        file.writeframes(data if data is not None else os.urandom(frames * channels * width))
    return out.getvalue()


def wav_header(tag: int, channels: int, rate: int, width: int, length: int,
               body: bytes) -> bytes:
    """A RIFF/WAVE header saying whatever it is told, then ``body``."""
    block = channels * width
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF,
                      block & 0xFFFF, (width * 8) & 0xFFFF)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack(
        "<I", length) + body
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


real_wavs = st.builds(wav, rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000,
                                                 96000]),
                      channels=st.integers(1, 3), width=st.integers(1, 4),
                      frames=st.integers(0, 2000))


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    """Random bytes; a real wav cut short or with bytes overwritten; a header saying anything
    (any format, channel count, rate, width and length: 0 Hz, 4 GHz, a 4 GB data chunk)."""
    kind = draw(st.sampled_from(["random", "cut", "overwritten", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=2000))
    if kind == "header":
        return wav_header(draw(st.sampled_from([1, 3, 0xFFFE]) | st.integers(0, 0xFFFF)),
                          draw(st.integers(0, 0xFFFF)),
                          draw(st.sampled_from([16000, 48000, MAX_RATE + 1])
                               | st.integers(0, 0xFFFFFFFF)),
                          draw(st.integers(0, 8)), draw(st.integers(0, 0xFFFFFFFF)),
                          draw(st.binary(max_size=4000)))
    data = bytearray(draw(real_wavs))
    if kind == "cut":
        return bytes(data[:draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, min(len(data) - 1, 60)))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(data=wav_files())
def test_any_wav_file_is_audio_or_an_audio_error_naming_it(scratch: Path, data: bytes) -> None:
    path = scratch / "fuzz.wav"
    path.write_bytes(data)
    try:
        audio = read_wav(path)
    except AudioError as error:
        assert str(error).startswith(f"{path}: ")
        return
    assert MIN_RATE <= audio.sample_rate <= MAX_RATE and audio.channels >= 1
    assert audio.samples.dtype == np.float32 and np.all(np.abs(audio.samples) <= 1.0)
    out = Resampler(audio.sample_rate, audio.channels)(audio.samples, last=True)
    expected = len(audio.samples) * SAMPLE_RATE / audio.sample_rate
    assert out.dtype == np.int16 and abs(len(out) - expected) <= 2 + 0.01 * expected


_logs = itertools.count()


@settings(max_examples=30, deadline=None)
@given(data=wav_files() | real_wavs)
def test_the_wav_source_plays_what_it_reads_and_fails_naming_what_it_cannot(
        scratch: Path, data: bytes) -> None:
    path = scratch / "source.wav"
    path.write_bytes(data)
    log = scratch / f"source-{next(_logs)}.db"
    SessionLog.create(log, {"session": "fuzz"}).close()
    source = WavSource({"path": str(path), "speed": 100, "lead_in_s": 0, "tail_s": 0},
                       name="operator_audio", session=SessionInfo(id="fuzz", log_path=log))

    async def play(harness: Harness) -> None:
        for _ in range(1000):
            if source.done or source.failed:
                return
            await asyncio.sleep(0.01)

    received = asyncio.run(_with_recorder(source, log, play))
    frames = [m for m in received if isinstance(m, AudioFrame)]
    errors = [m for m in received if isinstance(m, ActorError)]
    assert all(str(path) in error.error for error in errors)
    if source.failed:  # it says which file, and the session would go on without it
        assert errors and not errors[-1].recoverable and not frames
    else:
        assert source.done and all(error.recoverable for error in errors)  # truncated: played
        assert all(len(frame.pcm) == 3200 for frame in frames)
        assert [frame.start for frame in frames] == pytest.approx(
            [0.1 * n for n in range(len(frames))])
    assert len(log_is_whole(log)) == len(received)


def test_a_long_wav_at_a_high_rate_is_read_and_resampled(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"  # three minutes of 48 kHz stereo: 35 MB
    path.write_bytes(wav(rate=48000, channels=2, data=bytes(48000 * 2 * 2 * 180)))
    audio = read_wav(path)
    assert audio.duration == 180 and not audio.truncated
    out = Resampler(audio.sample_rate, audio.channels)(audio.samples, last=True)
    assert abs(len(out) - 180 * SAMPLE_RATE) <= 32


# ---------------------------------------------------------------------------- video


@pytest.fixture(scope="module")
def real_videos(scratch: Path) -> dict[str, bytes]:
    """Small real videos, as the tracker's recorder writes them."""
    videos = {}
    for suffix in (".mp4", ".avi"):
        path = scratch / f"real{suffix}"
        recorder = VideoRecorder(str(path), fps=10)
        rng = np.random.default_rng(7)
        for _ in range(12):
            recorder.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        recorder.close()
        videos[suffix] = path.read_bytes()
    return videos


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_video_file_is_frames_or_an_actor_failure_naming_it(
        scratch: Path, real_videos: dict[str, bytes], data: st.DataObject) -> None:
    suffix = data.draw(st.sampled_from(sorted(real_videos)), label="suffix")
    real = bytearray(real_videos[suffix])
    kind = data.draw(st.sampled_from(["random", "cut", "overwritten"]), label="kind")
    if kind == "random":
        content = data.draw(st.binary(max_size=5000), label="bytes")
    elif kind == "cut":
        content = bytes(real[:data.draw(st.integers(0, len(real)), label="cut")])
    else:
        for _ in range(data.draw(st.integers(1, 20), label="overwrites")):
            real[data.draw(st.integers(0, len(real) - 1))] = data.draw(st.integers(0, 255))
        content = bytes(real)
    path = scratch / f"fuzz{suffix}"
    path.write_bytes(content)
    try:
        source = open_source(video=str(path))
    except ActorFailed as error:
        assert str(error).startswith(f"{path}: ")
        return
    try:
        for _ in range(100):  # 12 frames were written: a file can say more, not this many
            t = source.grab()
            if t is None:
                break
            assert math.isfinite(t) and t >= 0
            frame = source.retrieve()  # None: a frame that does not decode (counted)
            assert frame is None or (frame.dtype == np.uint8 and frame.ndim == 3
                                     and frame.shape[2] == 3)
        else:
            pytest.fail(f"{path}: no end after 100 frames")
    finally:
        source.close()


@settings(max_examples=60, deadline=None)
@given(content=st.binary(max_size=600), suffix=st.sampled_from([".png", ".jpg", ".bmp"]))
def test_any_image_file_is_a_frame_or_none(scratch: Path, content: bytes, suffix: str) -> None:
    folder = scratch / "images"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / f"frame{suffix}").write_bytes(content)
    source = open_source(images=str(folder))
    assert source.grab() == 0.0
    frame = source.retrieve()
    assert frame is None or (frame.dtype == np.uint8 and frame.ndim == 3)
    assert source.grab() is None


# ---------------------------------------------------------------------------- a session


def test_a_session_given_files_it_cannot_read_goes_on_without_those_actors(
        tmp_path: Path, mission: Mission) -> None:
    from twin.config import load_config as config_of
    from twin.runtime import Session
    from twin.testing import core_config

    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(os.urandom(3000))
    config = core_config(config_of(ROOT / "configs" / "test.yaml"), tmp_path / "sessions",
                         operator_audio={"class": "actors.sources.WavSource",
                                         "on_failure": "degrade",
                                         "settings": {"path": str(garbage)}})
    session = Session(config, mission, local=True, speed=50)
    result = asyncio.run(session.run(timeout=2.0))
    assert result.degraded == ["operator_audio"]
    records = log_is_whole(result.log_path)
    errors = [r.message for r in records if isinstance(r.message, ActorError)]
    assert any(str(garbage) in e.error and "not a PCM wav" in e.error for e in errors)
    assert any(r.type == "mission_event" for r in records)  # the mission went on
