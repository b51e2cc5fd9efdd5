"""The gateway's WebSocket protocol: the frames a page sends, checked, and the frames it gets.

Every frame is one JSON text message. A page sends (``op`` tags the kind):

- ``{"op": "hello", "token": "..."}`` first, within ``HELLO_TIMEOUT_S``; the reply is a
  ``welcome`` frame, or an ``error`` (code ``unauthorized``) and the socket is closed with
  ``CLOSE_UNAUTHORIZED``;
- ``{"op": "control", "command": "pause", "argument": ""}`` (trainer): becomes a
  ``TrainerControl`` on the bus and is answered by an ``ack``;
- ``{"op": "audio", "pcm": "<base64 16 kHz int16 mono>", "start": 1.2}`` (operator, when the
  gateway allows the browser microphone): becomes an ``AudioFrame``;
- ``{"op": "say", "text": "..."}`` (operator, trainer): typed words for the twin; become a final
  ``Transcript`` with ``typed=True`` and are answered by an ``ack``; text that is empty once
  stripped or longer than ``MAX_SAY_CHARS`` is refused (code ``malformed``);
- ``{"op": "ping", "t": 123.4, "pad": 0}``: answered by ``pong`` with the same ``t`` and ``pad``
  bytes of padding (a page measures its round trip with it; ``twin bench avatar`` its baseline).

The gateway sends the bus messages themselves (``to_json`` of the registry: their ``type`` is
the message tag, bytes are base64) and frames of its own whose ``type`` is one of
``GATEWAY_FRAMES`` (never a message tag): ``welcome``, ``error``, ``ack``, ``pong`` and
``turn_latency``.

A frame that is not text, not JSON, not a known ``op``, has unknown or wrong fields, or is larger
than the gateway's limit is refused with ``{"type": "error", "code": ..., "message": ...}`` (plus
``"op"`` when the refused frame's kind is known, so a page can show the error where it was sent
from); the socket stays open (except for a failed hello).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias, Union

import msgspec

from twin.messages import TrainerCommand

HELLO_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED = 4401  # bad or missing token: the page does not retry
CLOSE_TOO_SLOW = 4408  # the page could not keep up with speech: it reconnects
MAX_PING_PAD = 4 * 2**20
MAX_AUDIO_BYTES = 32000  # one second of 16 kHz int16 mono
MAX_SAY_CHARS = 500  # a typed line for the twin: a question or two, not a document

GATEWAY_FRAMES = frozenset({"welcome", "error", "ack", "pong", "turn_latency"})

ErrorCode = Literal["unauthorized", "forbidden", "malformed", "too_large", "not_text",
                    "timeout", "unavailable"]


class Hello(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op",
            tag="hello"):
    token: Annotated[str, msgspec.Meta(max_length=256)]


class Control(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op",
              tag="control"):
    command: TrainerCommand
    argument: Annotated[str, msgspec.Meta(max_length=500)] = ""


class Audio(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op",
            tag="audio"):
    pcm: Annotated[bytes, msgspec.Meta(max_length=MAX_AUDIO_BYTES)]
    sample_rate: Literal[16000] = 16000
    start: Annotated[float, msgspec.Meta(ge=0)] = 0.0


class Say(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="say"):
    """Words typed for the twin (checked in ``parse``, which strips them, so that the error
    says what is wrong in words a person at the page understands)."""

    text: str


class Ping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="op", tag="ping"):
    t: float = 0.0
    pad: Annotated[int, msgspec.Meta(ge=0, le=MAX_PING_PAD)] = 0


ClientFrame: TypeAlias = Union[Hello, Control, Audio, Say, Ping]  # noqa: UP007 - msgspec union
_decoder = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()


class ProtocolError(ValueError):
    """A frame the gateway refuses; ``code`` and ``str()`` go into the error frame."""

    def __init__(self, code: ErrorCode, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.op = op  # the refused frame's kind, when known


def op_of(frame: ClientFrame) -> str:
    tag = type(frame).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def parse(data: str | bytes | None, max_bytes: int) -> ClientFrame:
    """The client frame in ``data``; ``ProtocolError`` says why it is refused."""
    if data is None:
        raise ProtocolError("not_text", "frames are JSON text messages, not binary")
    try:
        size = len(data.encode() if isinstance(data, str) else data)
    except UnicodeEncodeError:  # a lone surrogate: no socket delivers it, but parse is public
        raise ProtocolError("malformed", "not JSON: the text is not valid Unicode") from None
    if size > max_bytes:
        raise ProtocolError("too_large", f"frame of {size} bytes is over the limit of "
                                         f"{max_bytes} bytes")
    if isinstance(data, bytes):
        raise ProtocolError("not_text", "frames are JSON text messages, not binary")
    try:
        frame: ClientFrame = _decoder.decode(data)
    except msgspec.ValidationError as error:
        raise ProtocolError("malformed", f"invalid frame: {error}") from None
    except msgspec.DecodeError as error:
        raise ProtocolError("malformed", f"not JSON: {error}") from None
    if isinstance(frame, Audio) and len(frame.pcm) % 2:
        raise ProtocolError("malformed", "audio pcm must be whole 16-bit samples", "audio")
    if isinstance(frame, Say):
        text = frame.text.strip()
        if not text:
            raise ProtocolError("malformed", "there is nothing to send: type a question or a "
                                             "remark for the twin", "say")
        if len(text) > MAX_SAY_CHARS:
            raise ProtocolError("malformed", f"the text is {len(text)} characters long; the "
                                             f"twin takes at most {MAX_SAY_CHARS} at a time",
                                "say")
        frame = Say(text=text)
    return frame


def frame(kind: str, **fields: Any) -> str:
    """A gateway frame of ``kind`` (one of ``GATEWAY_FRAMES``) as JSON text."""
    assert kind in GATEWAY_FRAMES, kind
    return _encoder.encode({"type": kind, **fields}).decode()


def error_frame(code: ErrorCode, message: str, op: str | None = None) -> str:
    return frame("error", code=code, message=message, **({"op": op} if op else {}))
