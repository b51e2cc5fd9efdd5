"""The avatar gateway without a browser: tokens, the socket protocol, size limits, send queues.

The gateway runs for real (uvicorn on 127.0.0.1, a free port) on a LocalBus; the tests talk to
its socket with the ``websockets`` client, as a page would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from avatar.access import ROLES, Access, derive_token
from avatar.gateway import AvatarGateway
from avatar.hub import Client, Hub, OutFrame
from avatar.protocol import (
    CLOSE_UNAUTHORIZED,
    GATEWAY_FRAMES,
    MAX_SAY_CHARS,
    Audio,
    Control,
    Hello,
    Ping,
    ProtocolError,
    Say,
    parse,
)
from twin.actor import SessionInfo
from twin.config import Mission, load_mission
from twin.messages import (
    MESSAGE_TYPES,
    AudioFrame,
    Metric,
    MissionEvent,
    OperatorState,
    Speech,
    SpeechEnded,
    TrainerControl,
    Transcript,
    TwinDecision,
    TwinUtterance,
    Viseme,
    from_json,
)
from twin.testing import Harness

pytestmark = pytest.mark.unit

MISSION = Path(__file__).resolve().parents[2] / "missions" / "route_clearance.yaml"
SECRET = "unit-test-secret"


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


@pytest.fixture(scope="module")
def mission() -> Mission:
    return load_mission(MISSION)


# ---------------------------------------------------------------------------- tokens


def test_tokens_are_derived_per_session_and_role_and_checked() -> None:
    access = Access.from_secret(SECRET, "s1")
    assert len(set(access.tokens.values())) == 3
    assert access.tokens == Access.from_secret(SECRET, "s1").tokens  # stable: restarts agree
    assert access.tokens["operator"] != Access.from_secret(SECRET, "s2").tokens["operator"]
    assert access.tokens["operator"] != Access.from_secret("other", "s1").tokens["operator"]
    for role in ROLES:
        assert access.role_of(derive_token(SECRET, "s1", role)) == role
    for bad in ("", None, 42, access.tokens["viewer"] + "x", access.tokens["viewer"][:-1]):
        assert access.role_of(bad) is None
    links = access.links("http://127.0.0.1:8765/")
    assert links["trainer"] == f"http://127.0.0.1:8765/#token={access.tokens['trainer']}"


def test_only_the_trainer_steers_and_only_the_operator_speaks() -> None:
    assert Access.may("trainer", "control") and not Access.may("trainer", "audio")
    assert Access.may("operator", "audio") and not Access.may("operator", "control")
    assert not Access.may("viewer", "control") and not Access.may("viewer", "audio")
    assert Access.may("operator", "say") and Access.may("trainer", "say")  # both type
    assert not Access.may("viewer", "say")
    assert all(Access.may(role, "ping") and Access.may(role, "hello") for role in ROLES)


# ---------------------------------------------------------------------------- protocol


def test_parse_accepts_each_kind_of_frame() -> None:
    assert parse('{"op": "hello", "token": "abc"}', 1000) == Hello(token="abc")
    assert parse('{"op": "control", "command": "pause"}', 1000) == Control(command="pause")
    pcm = base64.b64encode(b"\x01\x00" * 10).decode()
    assert parse(f'{{"op": "audio", "pcm": "{pcm}", "start": 0.5}}', 1000) == Audio(
        pcm=b"\x01\x00" * 10, start=0.5)
    assert parse('{"op": "ping", "t": 1.5, "pad": 10}', 1000) == Ping(t=1.5, pad=10)
    assert parse('{"op": "say", "text": "  fuel state?\\n"}', 1000) == Say(text="fuel state?")
    assert parse(json.dumps({"op": "say", "text": "x" * MAX_SAY_CHARS}), 1000) == Say(
        text="x" * MAX_SAY_CHARS)


@pytest.mark.parametrize(("data", "code", "words"), [
    ("not json", "malformed", "not JSON"),
    ('{"op": "shout"}', "malformed", "invalid frame"),
    ('{"token": "abc"}', "malformed", "invalid frame"),
    ('{"op": "hello", "token": "abc", "extra": 1}', "malformed", "extra"),
    ('{"op": "control", "command": "self_destruct"}', "malformed", "command"),
    ('{"op": "control", "command": "end", "argument": "' + "x" * 501 + '"}', "malformed",
     "argument"),
    ('{"op": "audio", "pcm": "AAE=", "sample_rate": 44100}', "malformed", "sample_rate"),
    ('{"op": "audio", "pcm": "AAEC"}', "malformed", "16-bit"),
    ('{"op": "ping", "pad": -1}', "malformed", "pad"),
    (b'{"op": "ping"}', "not_text", "binary"),
    (None, "not_text", "binary"),
    ('{"op": "ping", "t": 1}' + " " * 2000, "too_large", "over the limit of 1024 bytes"),
])
def test_parse_refuses_bad_frames_saying_why(data: str | bytes | None, code: str,
                                             words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(data, 1024)
    assert caught.value.code == code
    assert words in str(caught.value)


@pytest.mark.parametrize(("text", "words"), [
    ("", "nothing to send"),
    ("  \t\n ", "nothing to send"),
    ("x" * (MAX_SAY_CHARS + 1), f"{MAX_SAY_CHARS + 1} characters long; the twin takes at most "
                                f"{MAX_SAY_CHARS}"),
])
def test_typed_text_that_is_empty_or_too_long_is_refused_saying_why(text: str,
                                                                    words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(json.dumps({"op": "say", "text": text}), 4096)
    assert (caught.value.code, caught.value.op) == ("malformed", "say")
    assert words in str(caught.value)


def test_gateway_frames_never_look_like_bus_messages() -> None:
    assert not GATEWAY_FRAMES & set(MESSAGE_TYPES)


# ---------------------------------------------------------------------------- send queues


def frame_of(kind: str, essential: bool = False) -> OutFrame:
    return OutFrame(json.dumps({"type": kind}), kind, essential)


def test_a_full_queue_drops_the_oldest_update_and_keeps_speech() -> None:
    async def scenario() -> None:
        client = Client("operator", capacity=3)
        client.push(frame_of("speech", essential=True))
        client.push(frame_of("operator_state"))
        client.push(frame_of("transcript"))
        client.push(frame_of("speech_cut", essential=True))  # drops operator_state
        assert [f.kind for f in client.queue] == ["speech", "transcript", "speech_cut"]
        client.push(frame_of("metric"))  # drops transcript
        assert [f.kind for f in client.queue] == ["speech", "speech_cut", "metric"]
        assert client.dropped == 2 and not client.too_slow
        client.push(frame_of("speech", essential=True))  # drops metric
        client.push(frame_of("mission_event"))  # nothing droppable queued: the update goes
        assert [f.kind for f in client.queue] == ["speech", "speech_cut", "speech"]
        assert client.dropped == 4
        for _ in range(3):  # only speech left: it may fill twice the capacity
            client.push(frame_of("speech", essential=True))
        assert len(client.queue) == 6 and not client.too_slow
        client.push(frame_of("speech", essential=True))  # and no more: too slow
        assert client.too_slow
        assert await client.next() is None  # the sender closes the socket

    run(scenario())


def test_a_page_that_joins_late_gets_the_history_first() -> None:
    async def scenario() -> None:
        hub = Hub(capacity=10, history=2)
        hub.broadcast(frame_of("mission_event"), keep=True)
        hub.broadcast(frame_of("speech", essential=True))
        hub.broadcast(frame_of("transcript"), keep=True)
        hub.broadcast(frame_of("twin_utterance"), keep=True)
        late = hub.join("viewer")
        assert [f.kind for f in late.queue] == ["transcript", "twin_utterance"]
        hub.broadcast(frame_of("speech", essential=True))
        assert (await late.next()) is not None and len(late.queue) == 2
        hub.leave(late)
        assert hub.snapshot()["clients"] == {}

    run(scenario())


# ---------------------------------------------------------------------------- the live socket


class Live:
    """A running gateway on a LocalBus, its probe, and socket helpers."""

    def __init__(self, harness: Harness, gateway: AvatarGateway) -> None:
        self.harness = harness
        self.gateway = gateway
        self.url = gateway.url.replace("http://", "ws://") + "/ws"
        self.tokens = gateway.access.tokens

    @asynccontextmanager
    async def socket(self, role: str | None, token: str | None = None) -> AsyncIterator[
            ClientConnection]:
        async with connect(self.url) as ws:
            if role is not None or token is not None:
                await ws.send(json.dumps({"op": "hello",
                                          "token": token or self.tokens[role]}))  # type: ignore[index]
            yield ws

    async def wait_on_bus(self, kind: type[Any], predicate: Callable[[Any], bool] = lambda m: True,
                          timeout: float = 5.0) -> Any:
        return await self.harness.wait_for(kind, predicate, timeout)


async def recv(ws: ClientConnection, kind: str | None = None,
               timeout: float = 5.0) -> dict[str, Any]:
    """The next frame (of ``kind``, skipping others)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if kind is None or frame["type"] == kind:
            return frame


@asynccontextmanager
async def live_gateway(mission: Mission | None, **settings: Any) -> AsyncIterator[Live]:
    info = SessionInfo(id="unit", mission=mission, secret=SECRET)
    gateway = AvatarGateway({"port": 0, **settings}, name="avatar", session=info)
    async with Harness(gateway) as harness:
        assert not gateway.failed, gateway.failed
        yield Live(harness, gateway)


def test_the_gateway_serves_the_page_and_links_with_the_session_tokens(mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            health = live.gateway.health()
            assert health["url"].startswith("http://127.0.0.1:")
            assert health["links"] == Access.from_secret(SECRET, "unit").links(health["url"])

            def get(path: str) -> tuple[int, str, dict[str, str]]:
                with urllib.request.urlopen(health["url"] + path, timeout=5) as response:
                    return response.status, response.read().decode(), dict(response.headers)

            status, body, headers = await asyncio.to_thread(get, "/")
            assert status == 200 and "/static/app.js" in body
            assert "default-src 'self'" in headers["content-security-policy"]
            status, body, _ = await asyncio.to_thread(get, "/static/face.js")
            assert status == 200 and "class Face" in body
            status, body, _ = await asyncio.to_thread(get, "/healthz")
            assert json.loads(body)["session"] == "unit" and live.tokens["trainer"] not in body

    run(scenario())


def test_a_wrong_or_missing_token_is_refused_and_the_socket_closed(mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            for token in ("wrong", live.tokens["viewer"][:-1]):
                async with live.socket(None, token=token) as ws:
                    error = await recv(ws)
                    assert error["type"] == "error" and error["code"] == "unauthorized"
                    with pytest.raises(ConnectionClosed) as closed:
                        await recv(ws)
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == CLOSE_UNAUTHORIZED
            async with live.socket(None) as ws:  # no hello: a ping first
                await ws.send(json.dumps({"op": "ping"}))
                error = await recv(ws)
                assert error["code"] == "unauthorized" and "hello" in error["message"]
            assert live.gateway.hub.snapshot()["clients"] == {}

    run(scenario())


def test_welcome_tells_the_role_what_it_may_do_and_hides_injects_from_the_operator(
        mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            async with live.socket("trainer") as ws:
                welcome = await recv(ws)
                assert welcome["type"] == "welcome" and welcome["role"] == "trainer"
                assert welcome["can"] == ["control", "say"]
                assert [i["id"] for i in welcome["mission"]["injects"]] == [
                    i.id for i in mission.injects]
                assert welcome["visemes"]["aa"]["jawOpen"] > welcome["visemes"]["PP"]["jawOpen"]
            async with live.socket("operator") as ws:
                welcome = await recv(ws)
                assert welcome["can"] == ["audio", "say"]
                assert welcome["mission"]["injects"] == []
            async with live.socket("viewer") as ws:
                assert (await recv(ws))["can"] == []

    run(scenario())


def test_the_trainer_steers_the_mission_and_the_viewer_cannot(mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            async with live.socket("viewer") as viewer:
                await recv(viewer, "welcome")
                await viewer.send(json.dumps({"op": "control", "command": "pause"}))
                error = await recv(viewer, "error")
                assert error["code"] == "forbidden" and "viewer" in error["message"]
                await viewer.send(json.dumps({"op": "ping", "t": 7}))  # still connected
                assert (await recv(viewer, "pong"))["t"] == 7
            async with live.socket("trainer") as trainer:
                await recv(trainer, "welcome")
                await trainer.send(json.dumps({"op": "control", "command": "inject",
                                               "argument": "ied-marker"}))
                ack = await recv(trainer, "ack")
                assert ack["command"] == "inject" and ack["argument"] == "ied-marker"
            control = await live.wait_on_bus(TrainerControl)
            assert (control.command, control.argument, control.source) == (
                "inject", "ied-marker", "avatar")
            assert len(live.harness.probe.messages(TrainerControl)) == 1  # none from the viewer

    run(scenario())


def test_oversized_malformed_and_binary_frames_get_an_error_and_the_socket_stays(
        mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission, max_message_bytes=2048) as live:
            async with live.socket("trainer") as ws:
                await recv(ws, "welcome")
                await ws.send(json.dumps({"op": "control", "command": "end",
                                          "argument": "x" * 3000}))
                error = await recv(ws, "error")
                assert error["code"] == "too_large" and "2048" in error["message"]
                await ws.send("{not json")
                assert (await recv(ws, "error"))["code"] == "malformed"
                await ws.send(b"\x00\x01")
                assert (await recv(ws, "error"))["code"] == "not_text"
                await ws.send(json.dumps({"op": "hello", "token": live.tokens["trainer"]}))
                assert (await recv(ws, "error"))["code"] == "malformed"
                await ws.send(json.dumps({"op": "ping", "t": 1, "pad": 5}))
                pong = await recv(ws, "pong")
                assert pong["pad"] == "xxxxx"
            assert not live.harness.probe.messages(TrainerControl)

    run(scenario())


def test_the_operator_microphone_becomes_audio_frames_when_allowed(mission: Mission) -> None:
    pcm = (b"\x10\x00" * 1600)  # 100 ms at 16 kHz

    async def scenario() -> None:
        frame = json.dumps({"op": "audio", "pcm": base64.b64encode(pcm).decode(), "start": 1.0})
        async with live_gateway(mission) as live:
            async with live.socket("operator") as ws:
                await recv(ws, "welcome")
                await ws.send(frame)
                audio = await live.wait_on_bus(AudioFrame)
                assert (audio.pcm, audio.start, audio.stream) == (pcm, 1.0, "operator")
            async with live.socket("viewer") as ws:
                await recv(ws, "welcome")
                await ws.send(frame)
                assert (await recv(ws, "error"))["code"] == "forbidden"
        async with live_gateway(mission, microphone=False) as live:
            async with live.socket("operator") as ws:
                assert (await recv(ws, "welcome"))["can"] == ["say"]
                await ws.send(frame)
                error = await recv(ws, "error")
                assert error["code"] == "forbidden" and "microphone" in error["message"]
            assert not live.harness.probe.messages(AudioFrame)

    run(scenario())


def test_operators_and_trainers_type_to_the_twin_and_viewers_cannot(mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            for role in ("operator", "trainer"):
                async with live.socket(role) as ws:
                    await recv(ws, "welcome")
                    said = f"{role}: fuel state?"
                    await ws.send(json.dumps({"op": "say", "text": f" {said} "}))
                    # The ack, and the transcript back from the bus (what the page shows), in
                    # either order; a late page also gets the lines typed before it joined
                    seen: dict[str, dict[str, Any]] = {}
                    while len(seen) < 2:
                        got = await recv(ws)
                        if got["type"] in ("ack", "transcript") and got.get("text") == said:
                            seen[got["type"]] = got
                    assert seen["ack"]["op"] == "say" and seen["transcript"]["typed"] is True

                    def is_said(message: Transcript, text: str = said) -> bool:
                        return message.text == text

                    typed = await live.wait_on_bus(Transcript, is_said)
                    assert (typed.final, typed.typed, typed.speaker, typed.turn,
                            typed.source) == (True, True, "operator", None, "avatar")
                    for text, words in (("   ", "nothing to send"),
                                        ("x" * 501, "at most 500")):
                        await ws.send(json.dumps({"op": "say", "text": text}))
                        error = await recv(ws, "error")
                        assert (error["code"], error["op"]) == ("malformed", "say")
                        assert words in error["message"]
            async with live.socket("viewer") as ws:
                await recv(ws, "welcome")
                await ws.send(json.dumps({"op": "say", "text": "let me in"}))
                error = await recv(ws, "error")
                assert (error["code"], error["op"]) == ("forbidden", "say")
                assert "viewer" in error["message"]
                await ws.send(json.dumps({"op": "ping", "t": 3}))  # still connected
                assert (await recv(ws, "pong"))["t"] == 3
            assert [m.text for m in live.harness.probe.messages(Transcript)] == [
                "operator: fuel state?", "trainer: fuel state?"]  # nothing refused published

    run(scenario())


def test_bus_messages_reach_the_page_as_registry_json_with_turn_latency(
        mission: Mission) -> None:
    speech = Speech(text="Fuel is fine.", index=0, final=True, pcm=b"\x01\x02" * 100, turn=3,
                    visemes=[Viseme(viseme="aa", start=0.0, duration=0.01)])

    async def scenario() -> None:
        async with live_gateway(mission) as live:
            async with live.socket("operator") as ws:
                await recv(ws, "welcome")
                for message in (
                    # the voice ended 0.6 s before the end of the turn was decided
                    SpeechEnded(at=1.0, duration=1.0, turn=3, voice_end=time.time() - 0.6),
                    Transcript(text="fuel state?", final=True, turn=3),
                    TwinDecision(trigger="question", intent="answer", style="brief",
                                 hedge=False, confidence=0.8, turn=3),
                    TwinUtterance(text="Fuel is fine.", index=0, final=True, turn=3),
                    speech,
                ):
                    await live.harness.send(message)
                got = await recv(ws, "speech")
                decoded = from_json(json.dumps(got))
                assert isinstance(decoded, Speech)
                assert msgspec.structs.replace(decoded, t=0.0, seq=0, source="") == \
                    msgspec.structs.replace(speech, t=0.0, seq=0, source="")
                latency = await recv(ws, "turn_latency")
                assert latency["turn"] == 3
                assert latency["turn_end_ms"] >= 600  # counted from the end of the voice
                assert latency["turn_end_ms"] <= latency["transcript_ms"] <= \
                    latency["speech_ms"] <= latency["total_ms"]
            metric = await live.wait_on_bus(Metric, lambda m: m.name == "turn_latency_ms")
            assert metric.turn == 3 and metric.value == latency["total_ms"]

    run(scenario())


def test_a_late_page_gets_the_console_state_but_no_old_speech(mission: Mission) -> None:
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            await live.harness.send(MissionEvent(kind="phase_started", mission=mission.name,
                                                 mission_time=0.0, name=mission.phases[0].id))
            await live.harness.send(Transcript(text="half a wor", final=False, turn=1))
            await live.harness.send(Speech(text="Old news.", index=0, final=True, pcm=b"\0\0"))
            await live.harness.send(Transcript(text="the final words", final=True, turn=1))
            await asyncio.sleep(0.3)
            async with live.socket("viewer") as ws:
                assert (await recv(ws))["type"] == "welcome"
                first = await recv(ws)
                second = await recv(ws)
                assert first["type"] == "mission_event"
                assert (second["type"], second["text"]) == ("transcript", "the final words")
                with pytest.raises(TimeoutError):
                    await recv(ws, timeout=0.3)

    run(scenario())


def test_a_second_session_gets_a_free_port_and_a_restart_keeps_its_own(
        mission: Mission) -> None:
    """Two sessions on one machine both configured for the same port: the second listens on
    a free one (its links say which); after a restart a gateway listens where it did (the
    pages reconnect there); an address it cannot have at all is a clear error."""
    async def scenario() -> None:
        async with live_gateway(mission) as live:
            port = int(live.gateway.url.rsplit(":", 1)[1])
            other = AvatarGateway({"port": port}, name="avatar",
                                  session=SessionInfo(id="second", secret=SECRET))
            async with Harness(other) as harness:
                assert other.failed is None
                second = int(other.url.rsplit(":", 1)[1])
                assert second != port
                assert other.health()["links"]["viewer"].startswith(f"http://127.0.0.1:{second}/")
                logged = await harness.wait_for(Metric, lambda m: m.name == "avatar_port")
                assert logged.value == second
            again = AvatarGateway({"port": port}, name="avatar",
                                  session=SessionInfo(id="second", secret=SECRET))
            await again.recover([logged])  # as after a restart: its own messages from the log
            async with Harness(again):
                assert again.url.endswith(f":{second}")
        bad = AvatarGateway({"host": "203.0.113.7"}, name="avatar3",
                            session=SessionInfo(id="unit", secret=SECRET))
        async with Harness(bad):
            assert bad.failed is not None
            assert "cannot listen on 203.0.113.7:8765" in bad.failed
            assert "settings host/port" in bad.failed

    run(scenario())


def test_a_session_reports_the_links_and_keeps_the_secret_out_of_the_log(
        tmp_path: Path, mission: Mission) -> None:
    from twin.config import load_config
    from twin.log import LogReader
    from twin.runtime import Session
    from twin.testing import core_config

    root = Path(__file__).resolve().parents[2]
    config = core_config(load_config(root / "configs" / "test.yaml"), tmp_path,
                         avatar={"class": "avatar.gateway.AvatarGateway",
                                 "settings": {"port": 0}})
    shown: dict[str, dict[str, str]] = {}
    session = Session(config, mission, local=True,
                      on_links=lambda name, links: shown.setdefault(name, links))
    asyncio.run(session.run(timeout=1.0))
    links = shown["avatar"]
    assert set(links) == set(ROLES) and links == session.links["avatar"]
    expected = Access.from_secret(session.info.secret, session.id).tokens
    assert all(links[role].endswith(f"#token={expected[role]}") for role in ROLES)
    assert session.info.secret not in repr(session.info)
    with LogReader(session.log_path) as reader:
        stored = json.dumps(reader.meta())
    assert session.info.secret not in stored
    assert not any(token in stored for token in expected.values())


def test_a_restarted_gateway_shows_the_console_state_from_the_session_log(
        tmp_path: Path, mission: Mission) -> None:
    from twin.log import SessionLog

    log_path = tmp_path / "s.db"
    log = SessionLog.create(log_path, {"session": "unit"})
    log.append([
        MissionEvent(kind="phase_started", mission=mission.name, mission_time=0.0,
                     name=mission.phases[0].id, t=1.0),
        Transcript(text="half", final=False, turn=1, t=2.0),
        Transcript(text="the whole line", final=True, turn=1, t=3.0),
        Speech(text="Already said.", index=0, final=True, pcm=b"\0\0", turn=1, t=4.0),
        TwinUtterance(text="Already said.", index=0, final=True, turn=1, t=4.0),
    ])
    log.close()

    async def scenario() -> None:
        info = SessionInfo(id="unit", mission=mission, secret=SECRET, log_path=log_path)
        gateway = AvatarGateway({"port": 0}, name="avatar", session=info)
        async with Harness(gateway) as harness:
            live = Live(harness, gateway)
            async with live.socket("viewer") as ws:
                assert (await recv(ws))["type"] == "welcome"
                kinds = [(await recv(ws))["type"] for _ in range(3)]
                assert kinds == ["mission_event", "transcript", "twin_utterance"]
                with pytest.raises(TimeoutError):
                    await recv(ws, timeout=0.3)

    run(scenario())


async def stuck_page(url: str, token: str) -> asyncio.StreamWriter:
    """A page that says hello and then never reads (a raw socket with a tiny receive buffer)."""
    import os
    import socket

    host, port = url.split("//")[1].split("/")[0].split(":")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=raw, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    payload = json.dumps({"op": "hello", "token": token}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # one masked text frame
    await writer.drain()
    return writer


def test_a_page_that_does_not_read_neither_holds_up_the_bus_nor_the_other_pages(
        mission: Mission) -> None:
    speech_pcm = b"\x01\x00" * 150_000  # 300 kB: the socket buffers fill quickly

    async def scenario() -> None:
        async with live_gateway(mission, send_queue=8) as live, \
                live.socket("operator") as reader:
            stuck = await stuck_page(live.url, live.tokens["viewer"])
            await recv(reader, "welcome")
            got: list[str] = []

            async def read_all() -> None:
                while got.count("speech") < 60:
                    got.append((await recv(reader, timeout=30))["type"])

            reading = asyncio.create_task(read_all())
            for n in range(60):
                await live.harness.send(Speech(text=f"s{n}", index=n, final=False,
                                               pcm=speech_pcm, turn=1))
                for _ in range(5):
                    await live.harness.send(OperatorState(label="neutral", valence=0.0,
                                                          arousal=0.0, confidence=0.5))
                await asyncio.sleep(0.02)  # sentences come at most this fast
            await asyncio.wait_for(reading, 60)  # the reading page got every sentence
            # The actor handled everything as it came, whatever the stuck page did
            assert live.gateway.handled == 60 * 6
            snapshot = live.gateway.hub.snapshot()
            assert snapshot["dropped"] > 0 and snapshot["closed_slow"] == 1, snapshot
            assert snapshot["clients"] == {"operator": 1}  # the stuck page was let go
            stuck.close()

    run(scenario())
