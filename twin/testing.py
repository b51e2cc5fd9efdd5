"""Test doubles and a harness, so users test their own actors and missions the way twin does.

- ``Probe``: an actor that records (and optionally hands to a callback) every message it
  receives; ``wait_for`` awaits a matching one.
- ``Ticker``: an actor that publishes a numbered ``Metric`` at a steady rate (a small real
  publisher for bus and runtime tests).
- ``Faulty``, ``Stuck``: actors that fail on purpose, or never stop (the runtime's policies).
- ``Harness``: drives one actor on a ``LocalBus`` with scripted messages and a probe::

      async with Harness(MissionDirector(session=SessionInfo(mission=m, speed=50))) as h:
          await h.send(TrainerControl(command="pause"))
          event = await h.wait_for(MissionEvent, lambda e: e.kind == "paused")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from twin.actor import Actor, ActorFailed
from twin.bus import LocalBus
from twin.config import ActorSpec, TwinConfig
from twin.messages import AudioFrame, Message, Metric, SpeechStarted, Transcript

M = TypeVar("M", bound=Message)


class ProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep: int = Field(100_000, ge=0, description="messages kept for inspection")
    delay_s: float = Field(0.0, ge=0, description="time taken to handle each message (a slow "
                                                   "subscriber)")


class Probe(Actor):
    """Receives every message type and keeps them (oldest first)."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (Message,)
    Settings: ClassVar[type[BaseModel]] = ProbeSettings
    lossless: ClassVar[bool] = True

    def __init__(self, *args: Any, callback: Callable[[Message], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[Message] = []
        self.callback = callback
        self._arrived = asyncio.Event()

    async def on_message(self, message: Message) -> None:
        settings = self.settings
        assert isinstance(settings, ProbeSettings)
        if settings.delay_s:
            await asyncio.sleep(settings.delay_s)
        if len(self.received) < settings.keep:
            self.received.append(message)
        if self.callback is not None:
            self.callback(message)
        self._arrived.set()

    def messages(self, kind: type[M]) -> list[M]:
        return [message for message in self.received if isinstance(message, kind)]

    def summary(self) -> dict[str, Any]:
        """Counts per source and the sequence numbers seen (for checks across Ray)."""
        by_source: dict[str, list[int]] = {}
        for message in self.received:
            by_source.setdefault(message.source, []).append(message.seq)
        return {"count": len(self.received), "seqs": by_source}

    async def wait_for(
        self,
        kind: type[M],
        predicate: Callable[[M], bool] = lambda message: True,
        timeout: float = 10.0,
    ) -> M:
        """The first received ``kind`` message matching ``predicate``; ``TimeoutError`` if none."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.received:
                if isinstance(message, kind) and predicate(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind.__name__} matching within {timeout} s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue


class TickerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(0.05, gt=0)
    count: int = Field(100, ge=0, description="ticks to publish; 0 = until stopped")
    name: str = "tick"


class Ticker(Actor):
    """Publishes ``Metric(name, value=n)`` for n = 0, 1, 2, ... every ``interval_s``."""

    Settings: ClassVar[type[BaseModel]] = TickerSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def recover(self, history: Any) -> None:
        ticks = [m for m in history if isinstance(m, Metric)]
        self.ticks = int(ticks[-1].value) + 1 if ticks else 0

    async def on_start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        settings = self.settings
        assert isinstance(settings, TickerSettings)
        while settings.count == 0 or self.ticks < settings.count:
            # Not droppable: a tick is a record the tests count.
            await self.publish(Metric(name=settings.name, value=self.ticks, unit="tick",
                                      labels={"kind": "tick"}))
            self.ticks += 1
            await asyncio.sleep(settings.interval_s)

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def on_health(self) -> dict[str, Any]:
        return {"ticks": self.ticks}


class Burst(Actor):
    """Publishes a burst on command: droppable ``Metric``s with a ``Transcript`` every n-th."""

    async def burst(self, count: int, every: int) -> None:
        for n in range(count):
            if n % every == 0:
                await self.publish(Transcript(text=f"line {n}", final=True))
            else:
                await self.publish(Metric(name="burst", value=n))
        assert self.bus is not None
        await self.bus.flush()


class Harness:
    """One actor under test on a ``LocalBus``, with a ``Probe`` seeing everything it publishes."""

    def __init__(self, actor: Actor) -> None:
        self.bus = LocalBus()
        self.actor = actor
        self.probe = Probe(name="probe")
        self.probe.attach(self.bus)
        actor.attach(self.bus)
        self._seq = 0

    async def __aenter__(self) -> Harness:
        await self.probe.start()
        await self.actor.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.actor.stop()
        await self.probe.stop()

    async def send(self, message: Message, source: str = "script") -> None:
        """Publish ``message`` as if from another actor named ``source``."""
        stamped = msgspec.structs.replace(message, source=source, seq=self._seq, t=time.time())
        self._seq += 1
        await self.bus.publish(stamped)

    async def wait_for(
        self, kind: type[M], predicate: Callable[[M], bool] = lambda m: True,
        timeout: float = 10.0,
    ) -> M:
        return await self.probe.wait_for(kind, predicate, timeout)


class FaultySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_after_s: float = Field(0.2, ge=0, description="seconds after start before it fails")
    how: str = Field("fail", pattern="^(fail|start)$",
                     description="fail: raise ActorFailed later; start: fail in on_start")


class Faulty(Actor):
    """Fails on purpose, to exercise the runtime's failure policies (restart, degrade, end)."""

    Settings: ClassVar[type[BaseModel]] = FaultySettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, FaultySettings)
        if settings.how == "start":
            raise ActorFailed("failed to start on purpose")
        self._task = asyncio.create_task(self._later(settings.fail_after_s))

    async def _later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.fail(ActorFailed("failed on purpose"))


class StuckSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    how: str = Field("wait", pattern="^(wait|block|start)$",
                     description="wait: its stop awaits forever; block: its stop blocks its "
                     "event loop (only on Ray: in one process it would block every actor); "
                     "start: its start never ends")


class Stuck(Actor):
    """Never stops (a bug to exercise the runtime's grace period): its ``on_stop`` waits
    forever, or blocks its event loop, which no cancel reaches; or never starts."""

    Settings: ClassVar[type[BaseModel]] = StuckSettings

    async def on_start(self) -> None:
        settings = self.settings
        assert isinstance(settings, StuckSettings)
        if settings.how == "start":
            await asyncio.Event().wait()

    async def on_stop(self) -> None:
        settings = self.settings
        assert isinstance(settings, StuckSettings)
        if settings.how == "block":
            time.sleep(3600)
        await asyncio.Event().wait()


def core_config(base: TwinConfig, log_dir: Path, **extra: dict[str, Any]) -> TwinConfig:
    """``base`` reduced to the two actors every session has (recorder, mission), plus ``extra``
    actor specs by name, logging to ``log_dir``: a session with no models to load."""
    actors = {name: base.actors[name] for name in ("recorder", "mission")}
    for name, spec in extra.items():
        actors[name] = ActorSpec.model_validate(spec)
    session = base.session.model_copy(update={"log_dir": log_dir})
    return base.model_copy(update={"actors": actors, "session": session})


FRAME_S = 0.1
"""The length of an ``AudioFrame`` as a microphone source sends them."""


class Microphone:
    """Recorded 16 kHz audio sent to a speech recogniser on a :class:`Harness` as a microphone
    sends it: 100 ms ``AudioFrame``s, each once its last sample is due (``speed`` times sooner),
    the stream time running on from call to call (``twin bench asr``, ``twin eval asr``)."""

    def __init__(self, harness: Harness, actor: Any, *, speed: float = 1.0) -> None:
        self.harness, self.actor, self.speed = harness, actor, speed
        self.clock = 0.0  # stream time of the next frame

    async def send(self, samples: Any, *, paced: bool = True) -> list[float]:
        """Send ``samples`` (int16), padded to whole frames, paced as a microphone (``paced``
        false: as fast as the actor takes them); wait until the actor has handled every frame.
        The wall time (``time.time()``) at which each frame went out."""
        import numpy as np

        frame = round(FRAME_S * 16000)
        padded = np.concatenate([samples, np.zeros(-len(samples) % frame, np.int16)])
        target = self.actor.handled + len(padded) // frame
        sent: list[float] = []
        began = time.monotonic()
        for n, part in enumerate(padded.reshape(-1, frame)):
            if paced:
                delay = began + (n + 1) * FRAME_S / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent.append(time.time())
            await self.harness.send(AudioFrame(pcm=part.astype("<i2").tobytes(),
                                               start=round(self.clock, 3)))
            self.clock += FRAME_S
        while self.actor.handled < target:
            if self.actor.failed:
                raise RuntimeError(f"the SpeechRecognizer failed: {self.actor.failed}")
            await asyncio.sleep(0.005)
        return sent


def final_transcripts(harness: Harness, after_turn: int) -> list[Transcript]:
    """The final transcripts of the turns after ``after_turn``, but those of a turn the operator
    went on with (the next turn's final holds its words too)."""
    went_on = {m.continues for m in harness.probe.messages(SpeechStarted)}
    return sorted((t for t in harness.probe.messages(Transcript)
                   if t.final and t.turn is not None and t.turn > after_turn
                   and t.turn not in went_on), key=lambda t: t.turn or 0)
