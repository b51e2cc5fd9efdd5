"""AvatarGateway: the actor that serves the avatar page and console to browsers.

In: the bus messages a page shows (the twin's speech and the orders to stop it, transcripts,
the twin's decisions and replies, the operator's emotional state, mission events, actor errors,
the operator's thumbnails when the config turns them on).
Out, to the pages: each of them as JSON through the message registry, over a WebSocket (see
``avatar.protocol``), plus a ``turn_latency`` frame per operator turn the twin answers. Out, to
the bus: ``TrainerControl`` from trainer pages, ``AudioFrame`` from an operator page's
microphone (when allowed), a final ``Transcript`` (``typed=True``, no turn: the Dialogue numbers
it) for the words typed on an operator or trainer page, and a ``Metric`` ``turn_latency_ms`` per
answered turn (the true end of the operator's voice to the first speech of the reply at the
gateway; each stage, the end-of-turn wait first, counted from the same anchor).

The web server (uvicorn, ``avatar.app``) runs on its own event loop in a thread of this actor, so
sending to browsers never stalls the actor's bus handling: ``on_message`` encodes a message once
and hands it to the server loop, where every page has a bounded queue (``avatar.hub``). It
listens on ``settings.host:port`` (127.0.0.1 by default). The role tokens come from the
session's secret (``avatar.access``); ``health()["links"]`` has one link per role, which the
runtime passes to ``twin run`` to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from avatar.access import Access, Role
from avatar.hub import Hub, OutFrame
from avatar.protocol import Audio, Control, ProtocolError, Say, frame
from twin.actor import Actor, ActorFailed
from twin.messages import (
    ActorError,
    AudioFrame,
    EmotionEstimate,
    Interrupt,
    Message,
    Metric,
    MissionEvent,
    OperatorState,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    TrainerControl,
    Transcript,
    TwinDecision,
    TwinUtterance,
    VideoThumbnail,
    tag_of,
    to_json,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "the avatar gateway needs FastAPI and uvicorn: pip install 'twin[avatar]'"
ESSENTIAL = (Speech, SpeechCut, Interrupt)  # never dropped for a slow page
# Console state a page that joins late starts from (Speech is never replayed; partial
# transcripts are stale at once).
HISTORY_TYPES = (MissionEvent, Transcript, TwinUtterance, TwinDecision, OperatorState,
                 EmotionEstimate, TrainerControl, SpeechCut, ActorError)


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every "
                                               "interface; then put it behind TLS)")
    port: int = Field(8765, ge=0, le=65535, description="0: any free port")
    public_url: str | None = Field(None, description="base of the printed links when pages "
                                                     "reach the gateway through a proxy")
    max_message_bytes: int = Field(65536, ge=1024, description="largest frame a page may send")
    send_queue: int = Field(256, ge=8, description="frames queued per page before the oldest "
                                                   "droppable ones are dropped")
    history: int = Field(300, ge=0, description="console frames a page joining late gets")
    microphone: bool = Field(True, description="operator pages may stream their microphone")
    microphone_stream: str = Field("operator", description="AudioFrame stream of the browser "
                                                           "microphone")


@dataclass
class _TurnTimes:
    """Wall times (bus ``t``) of one operator turn's stages, as they reach the gateway."""

    ended: float | None = None  # the true end of the operator's voice
    decided: float | None = None  # when the end of the turn was decided
    final: float | None = None
    decision: float | None = None
    sentence: float | None = None
    reported: bool = False


class AvatarGateway(Actor):
    """Serves the avatar page and console; relays the bus to it and its commands to the bus."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (
        Speech, SpeechCut, Interrupt, SpeechStarted, SpeechEnded, Transcript, TwinDecision,
        TwinUtterance, EmotionEstimate, OperatorState, MissionEvent, TrainerControl, ActorError,
        VideoThumbnail,  # only when the config turns thumbnails on
    )
    Settings: ClassVar[type[BaseModel]] = GatewaySettings
    start_phase: ClassVar[int] = 0  # up before anyone speaks: the page is ready for the first word

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.settings
        assert isinstance(settings, GatewaySettings)
        self.config = settings
        self.access = (Access.from_secret(self.session.secret, self.session.id)
                       if self.session.secret else Access.random())
        self.hub = Hub(settings.send_queue, settings.history)
        self.max_message_bytes = settings.max_message_bytes
        self.url = ""
        self._port = self.config.port  # after a restart: the port it had
        self.received: dict[str, int] = {}
        self.mic_frames = 0
        self._turns: dict[int, _TurnTimes] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._actor_loop: asyncio.AbstractEventLoop | None = None
        self._serve_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        try:
            import uvicorn

            from avatar.app import create_app
        except ImportError as error:
            raise ActorFailed(f"{INSTALL_HINT} ({error})") from None
        self._actor_loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._seed_history)
        listener = self._listen()
        host, port = listener.getsockname()[:2]
        if self._port and port != self._port:
            log.warning("avatar gateway: port %d is taken (another session?); listening on %d",
                        self._port, port)
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        self.url = (self.config.public_url or f"http://{_bracket(shown)}:{port}").rstrip("/")
        config = uvicorn.Config(create_app(self), log_level="warning", access_log=False,
                                lifespan="off", ws_max_size=4 * self.max_message_bytes,
                                ws_ping_interval=10.0, ws_ping_timeout=20.0)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, args=(self._server, listener),
                                        name=f"{self.name}-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15.0
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                listener.close()
                raise ActorFailed(f"the avatar gateway did not start on {self.url}: "
                                  f"{self._serve_error or 'timed out'}")
            await asyncio.sleep(0.01)
        self._port = port
        await self.publish(Metric(name="avatar_port", value=port, labels={"url": self.url}))

    def _listen(self) -> socket.socket:
        """Listen on the port this gateway had before a restart (the pages reconnect to it),
        else the configured one; when that is taken (another session on this machine), on any
        free port."""
        host, port = self.config.host, self._port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for attempt in dict.fromkeys((port, 0)):
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at restart
            try:
                listener.bind((host, attempt))
                listener.listen(128)
            except OSError as error:
                listener.close()
                if error.errno == errno.EADDRINUSE and attempt:
                    continue
                raise ActorFailed(f"the avatar gateway cannot listen on {host}:{attempt}: "
                                  f"{error.strerror or error} (settings host/port)") from None
            listener.setblocking(False)
            return listener
        raise AssertionError("unreachable: port 0 is never in use")

    def _serve(self, server: Any, listener: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._server_loop = loop
        try:
            loop.run_until_complete(server.serve(sockets=[listener]))
        except BaseException as error:  # reported by on_start / health
            self._serve_error = error
        finally:
            listener.close()
            loop.close()

    async def on_stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        loop = self._server_loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.hub.close_all)
        await asyncio.sleep(0.05)  # let the senders say goodbye
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, 10.0)
        self._server = None
        self._thread = None

    def on_health(self) -> dict[str, Any]:
        return {"url": self.url, "links": self.access.links(self.url) if self.url else {},
                **self.hub.snapshot(), "mic_frames": self.mic_frames}

    def status(self) -> dict[str, Any]:
        """What ``/healthz`` shows (no tokens)."""
        return {"session": self.session.id, **self.hub.snapshot()}

    # ------------------------------------------------------------------ bus -> pages

    async def on_message(self, message: Message) -> None:
        tag = tag_of(type(message))
        self.received[tag] = self.received.get(tag, 0) + 1
        if isinstance(message, Transcript) and not message.final:
            keep = False
        else:
            keep = isinstance(message, HISTORY_TYPES)
        frames = [(OutFrame(to_json(message).decode(), tag,
                            essential=isinstance(message, ESSENTIAL)), keep)]
        latency = self._track_turn(message)
        if latency is not None:
            frames.append((OutFrame(frame("turn_latency", **latency), "turn_latency"), True))
        self._post(frames)
        if latency is not None and "total_ms" in latency:
            await self.publish(Metric(name="turn_latency_ms", value=latency["total_ms"],
                                      unit="ms", turn=message.turn,
                                      labels={"to": "first speech at the gateway"}))

    def _post(self, frames: list[tuple[OutFrame, bool]]) -> None:
        """Hand frames to the server loop (thread-safe)."""
        loop = self._server_loop
        if loop is None or loop.is_closed():
            for item, keep in frames:  # not serving yet: keep the console state for later
                if keep:
                    self.hub.history.append(item)
            return

        def deliver() -> None:
            for item, keep in frames:
                self.hub.broadcast(item, keep=keep)

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver)

    def _track_turn(self, message: Message) -> dict[str, Any] | None:
        """Stage times of operator turns; the figures once the turn's first speech arrives."""
        turn = message.turn
        if turn is None:
            return None
        if isinstance(message, SpeechEnded):
            if message.lost:  # closed after a crash of the recogniser: no voice end to count from
                return None
            self._turns[turn] = _TurnTimes(ended=message.anchor, decided=message.t)
            while len(self._turns) > 64:
                self._turns.pop(next(iter(self._turns)))
            return None
        times = self._turns.get(turn)
        if times is None or times.reported:
            return None
        if isinstance(message, Transcript) and message.final and times.final is None:
            times.final = message.t
        elif isinstance(message, TwinDecision) and times.decision is None:
            times.decision = message.t
        elif isinstance(message, TwinUtterance) and times.sentence is None:
            times.sentence = message.t
        elif isinstance(message, Speech) and times.ended is not None:
            times.reported = True
            now = time.time()

            def ms(t: float | None) -> float | None:
                return None if t is None else round((t - times.ended) * 1000, 1)  # type: ignore[operator]

            return {"turn": turn, "turn_end_ms": ms(times.decided),
                    "transcript_ms": ms(times.final),
                    "decision_ms": ms(times.decision), "sentence_ms": ms(times.sentence),
                    "speech_ms": ms(message.t), "total_ms": ms(now)}
        return None

    # ------------------------------------------------------------------ pages -> bus

    def welcome(self, role: Role) -> dict[str, Any]:
        """What a page learns when it connects: its role, the session, the mission, the face."""
        from actors.visemes import ARKIT_BLENDSHAPES, VISEMES

        info = self.session
        mission: dict[str, Any] | None = None
        if info.mission is not None:
            m = info.mission
            mission = {
                "name": m.name, "title": m.title, "duration": m.total_duration,
                "persona": m.persona.model_dump(mode="json"),
                "phases": [{"id": p.id, "title": p.title, "duration": p.duration}
                           for p in m.phases],
                "objectives": [{"id": o.id, "text": o.text} for o in m.objectives],
                # Only the trainer sees the injects to come.
                "injects": [{"id": i.id, "text": i.text, "priority": i.priority}
                            for i in m.injects] if role == "trainer" else [],
            }
        return {
            "role": role, "session": info.id, "mode": info.mode, "speed": info.speed,
            "server_time": time.time(), "mission": mission,
            "can": sorted(op for op in ("control", "audio", "say")
                          if self.access.may(role, op)
                          and (op != "audio" or self.config.microphone)),
            "limits": {"max_message_bytes": self.max_message_bytes},
            "visemes": {name: ARKIT_BLENDSHAPES[name] for name in VISEMES},
        }

    async def submit(self, role: Role, command: Control | Audio | Say) -> None:
        """Publish a page's command on the bus (called on the server loop)."""
        if isinstance(command, Control):
            message: Message = TrainerControl(command=command.command, argument=command.argument)
        elif isinstance(command, Say):
            # The trainer types as the operator would speak (standing in for them); turn None
            # lets the Dialogue number the turn as it does a recognised one.
            message = Transcript(text=command.text, final=True, typed=True, speaker="operator",
                                 turn=None)
        else:
            if not self.config.microphone:
                raise ProtocolError("forbidden", "this gateway does not take the browser "
                                                 "microphone (settings.microphone)")
            self.mic_frames += 1
            message = AudioFrame(pcm=command.pcm, sample_rate=command.sample_rate,
                                 start=command.start, stream=self.config.microphone_stream)
        loop = self._actor_loop
        if loop is None or not self.started:
            raise ProtocolError("unavailable", "the gateway is not running")
        future = asyncio.run_coroutine_threadsafe(self.publish(message), loop)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), 10.0)
        except Exception as error:
            raise ProtocolError("unavailable", f"could not publish: {error}") from None

    # ------------------------------------------------------------------ recovery

    def _seed_history(self) -> None:
        """After a restart (or a late start): the console state so far, from the session log."""
        path = self.session.log_path
        if path is None or not Path(path).exists() or self.config.history == 0:
            return
        from twin.log import LogError, LogReader

        tags = [tag_of(cls) for cls in HISTORY_TYPES]
        try:
            with LogReader(path) as reader:
                recent: list[Message] = list(reader.messages(types=tags))
        except LogError:
            return
        kept = [m for m in recent if not (isinstance(m, Transcript) and not m.final)]
        for message in kept[-self.config.history:]:
            self.hub.history.append(OutFrame(to_json(message).decode(), tag_of(type(message))))

    async def recover(self, history: Sequence[Message]) -> None:
        """The port it listened on (the pages reconnect there); ``on_start`` reads the console
        state."""
        ports = [m for m in history if isinstance(m, Metric) and m.name == "avatar_port"]
        if ports:
            self._port = int(ports[-1].value)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
