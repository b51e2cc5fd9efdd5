"""MissionDirector: runs the mission clock and publishes what happens in the scenario.

It turns the session's mission (``twin.config.Mission``) into a timeline of cues — mission start,
each phase's start, each timed inject (training mode only) and the end — and publishes a
``MissionEvent`` when each cue is due on the mission clock. The clock runs ``session.speed`` times
faster than the wall clock (1.0 for a live exercise). ``TrainerControl`` messages pause, resume,
skip to the next phase, fire an inject now, or end the mission.

Its own events are the state: after a restart, ``recover`` rebuilds the clock and what already
fired from the events it had published, so nothing fires twice and the mission goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from twin.actor import Actor, ActorFailed
from twin.config import Mission
from twin.messages import Message, MissionEvent, MissionEventKind, TrainerControl


class MissionDirectorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tick_s: float = Field(0.25, gt=0, description="longest sleep between clock checks (seconds)")


@dataclass(frozen=True)
class Cue:
    """Something due at a mission time."""

    at: float
    kind: MissionEventKind
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


class MissionDirector(Actor):
    """The mission clock: phases, injects, trainer commands."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (TrainerControl,)
    Settings: ClassVar[type[BaseModel]] = MissionDirectorSettings
    start_phase: ClassVar[int] = 2  # the clock starts when every other actor is ready

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fired: set[str] = set()
        self.paused = False
        self.ended = False
        self._base_mission_time = 0.0
        self._base_wall = time.monotonic()
        self._changed = asyncio.Event()
        self._clock: asyncio.Task[None] | None = None
        self._cues: list[Cue] = []

    @property
    def mission(self) -> Mission:
        if self.session.mission is None:
            raise ActorFailed("the mission director needs a mission in the session")
        return self.session.mission

    def mission_time(self) -> float:
        if self.paused or self.ended:
            return self._base_mission_time
        elapsed = (time.monotonic() - self._base_wall) * self.session.speed
        return self._base_mission_time + elapsed

    def _set_clock(self, mission_time: float, *, paused: bool) -> None:
        self._base_mission_time = mission_time
        self._base_wall = time.monotonic()
        self.paused = paused
        self._changed.set()

    def _timeline(self) -> list[Cue]:
        mission = self.mission
        cues = [Cue(0.0, "mission_started", mission.name)]
        start = 0.0
        for phase in mission.phases:
            cues.append(Cue(start, "phase_started", phase.id))
            start += phase.duration
        if self.session.mode == "training":
            cues.extend(Cue(inject.at, "inject", inject.id) for inject in mission.injects)
        cues.append(Cue(mission.total_duration, "mission_ended", mission.name))
        order = {"mission_started": 0, "phase_started": 1, "inject": 2, "mission_ended": 3}
        return sorted(cues, key=lambda cue: (cue.at, order.get(cue.kind, 2)))

    async def recover(self, history: Sequence[Message]) -> None:
        events = [m for m in history if isinstance(m, MissionEvent)]
        if not events:
            return
        last = events[-1]
        self.fired = {f"{m.kind}:{m.name}" for m in events}
        self.ended = any(m.kind == "mission_ended" for m in events)
        paused = last.kind == "paused"
        downtime = 0.0 if paused else max(0.0, time.time() - last.t) * self.session.speed
        self._set_clock(last.mission_time + downtime, paused=paused)
        # Cues before the last event that never fired were skipped by the trainer.
        for cue in self._timeline():
            if cue.at < last.mission_time:
                self.fired.add(cue.key)

    async def on_start(self) -> None:
        self._cues = self._timeline()
        if not self.fired:
            self._set_clock(0.0, paused=False)
        self._clock = asyncio.create_task(self._run_clock(), name="mission-clock")

    async def on_stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock

    def on_health(self) -> dict[str, Any]:
        return {"mission_time": self.mission_time(), "paused": self.paused, "ended": self.ended}

    async def _run_clock(self) -> None:
        tick = self.settings.tick_s if isinstance(self.settings, MissionDirectorSettings) else 0.25
        while not self.ended:
            now = self.mission_time()
            for cue in self._cues:
                if cue.key in self.fired or cue.at > now:
                    continue
                await self._fire(cue, max(cue.at, 0.0))
                if self.ended:
                    return
            upcoming = [cue.at for cue in self._cues if cue.key not in self.fired]
            wait = tick
            if upcoming and not self.paused:
                wait = min(tick, max(0.0, (min(upcoming) - now) / self.session.speed))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    async def _fire(self, cue: Cue, mission_time: float, note: str = "") -> None:
        self.fired.add(cue.key)
        mission = self.mission
        text, priority, facts = note, "routine", []
        if cue.kind == "phase_started":
            phase = next(p for p in mission.phases if p.id == cue.name)
            text = f"{phase.title}. {phase.briefing}".strip()
        elif cue.kind == "inject":
            inject = next(i for i in mission.injects if i.id == cue.name)
            said = inject.source and not inject.text.startswith(inject.source)
            source = f"{inject.source}: " if said else ""
            text, priority, facts = f"{source}{inject.text}", inject.priority, list(inject.facts)
        elif cue.kind == "mission_started":
            text = mission.title
        elif cue.kind == "mission_ended":
            self.ended = True
            self._base_mission_time = mission_time
            text = note or "mission complete"
        await self.publish(
            MissionEvent(
                kind=cue.kind,
                mission=mission.name,
                mission_time=round(mission_time, 3),
                name=cue.name,
                text=text,
                priority=priority,
                facts=facts,
            )
        )

    async def on_message(self, message: Message) -> None:
        if not isinstance(message, TrainerControl) or self.ended:
            return
        now = self.mission_time()
        command = message.command
        if command == "pause" and not self.paused:
            self._set_clock(now, paused=True)
            await self._publish_control("paused", now, message.argument)
        elif command == "resume" and self.paused:
            self._set_clock(now, paused=False)
            await self._publish_control("resumed", now, message.argument)
        elif command == "skip_phase":
            starts = [c.at for c in self._cues if c.kind == "phase_started" and c.at > now]
            target = starts[0] if starts else self.mission.total_duration
            for cue in self._cues:  # what the skip jumps over does not fire late
                if now <= cue.at < target and cue.kind == "inject":
                    self.fired.add(cue.key)
            self._set_clock(target, paused=self.paused)
        elif command == "inject":
            inject = next((i for i in self.mission.injects if i.id == message.argument), None)
            if inject is None:
                known = ", ".join(i.id for i in self.mission.injects) or "none"
                raise ValueError(f"no inject {message.argument!r} in this mission (known: {known})")
            await self._fire(Cue(now, "inject", inject.id), now)
        elif command == "end":
            await self._fire(Cue(now, "mission_ended", self.mission.name), now,
                             note=message.argument or "ended by the trainer")
        self._changed.set()

    async def _publish_control(self, kind: MissionEventKind, now: float, note: str) -> None:
        await self.publish(
            MissionEvent(kind=kind, mission=self.mission.name, mission_time=round(now, 3),
                         text=note)
        )
