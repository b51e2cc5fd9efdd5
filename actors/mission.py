"""MissionDirector: runs the mission clock and publishes what happens in the scenario.

In: ``TrainerControl`` (pause, resume, skip a phase, fire an inject now, end) and the operator's
final ``Transcript``s (for conditions on what the operator says). Out: ``MissionEvent``s.

It turns the session's mission (``twin.config.Mission``) into a timeline of cues — mission start,
each phase's start, each timed inject (training mode only) and the end — and publishes a
``MissionEvent`` when each cue is due on the mission clock. The clock runs ``session.speed`` times
faster than the wall clock (1.0 for a live exercise).

Conditions (``twin.config.Condition``) add what the clock alone cannot say:

- an objective's ``when`` publishes ``objective_met``;
- a phase's ``until`` ends the phase early: the clock moves to the next phase's start (as a
  trainer's skip does) and what was planned for the rest of the phase does not happen;
- an inject's ``when`` fires it (training mode only), once unless it says ``repeat``.

A condition on the operator's words is checked against each final transcript as it arrives; a
condition on the mission's state (injects fired, objectives met, the phase, the time) as soon as
something changes. Nothing fires while the mission is paused. An event that did not come from
the clock says why in its ``reason``.

Its own events are the state: after a restart, ``recover`` rebuilds the clock, what already fired
and what is met from the events it had published — nothing fires twice — and reads the session
log for the transcripts that arrived while it was down, so nothing the operator said is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from twin.actor import Actor, ActorFailed
from twin.config import Condition, Inject, Mission, Objective
from twin.messages import Message, MissionEvent, MissionEventKind, TrainerControl, Transcript


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


_WORD_RE = re.compile(r"[^a-z0-9%]+")


def _words(text: str) -> str:
    """Lower-case words separated by single spaces, with a space at each end (for matching)."""
    return f" {_WORD_RE.sub(' ', text.lower()).strip()} "


def said(condition: Condition, text: str) -> str | None:
    """What of ``condition``'s words clauses ``text`` matches (a word, or the regex's match);
    ``None`` if it does not. Both ``said`` and ``matches`` must match when both are given."""
    found: list[str] = []
    if condition.said:
        spoken = _words(text)
        hit = next((w for w in condition.said if _words(w) != "  " and _words(w) in spoken), None)
        if hit is None:
            return None
        found.append(hit)
    if condition.matches is not None:
        match = re.search(condition.matches, text, re.IGNORECASE)
        if match is None:
            return None
        found.append(match.group(0))
    return " / ".join(found) if found else None


class MissionDirector(Actor):
    """The mission clock: phases, injects, objectives, conditions, trainer commands."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (TrainerControl, Transcript)
    Settings: ClassVar[type[BaseModel]] = MissionDirectorSettings
    start_phase: ClassVar[int] = 2  # the clock starts when every other actor is ready

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fired: set[str] = set()
        self.met: set[str] = set()
        self.phase: str | None = None
        self.paused = False
        self.ended = False
        self._base_mission_time = 0.0
        self._base_wall = time.monotonic()
        self._changed = asyncio.Event()
        self._clock: asyncio.Task[None] | None = None
        self._cues: list[Cue] = []
        self._reasons: dict[str, str] = {}  # cue key -> why it fires early (phase exits)
        self._missed: list[Transcript] = []  # said while this actor was down (recovery)

    @property
    def mission(self) -> Mission:
        if self.session.mission is None:
            raise ActorFailed("the mission director needs a mission in the session")
        return self.session.mission

    @property
    def training(self) -> bool:
        return self.session.mode == "training"

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
        if self.training:
            cues.extend(Cue(inject.at, "inject", inject.id)
                        for inject in mission.injects if inject.at is not None)
        cues.append(Cue(mission.total_duration, "mission_ended", mission.name))
        order = {"mission_started": 0, "phase_started": 1, "inject": 2, "mission_ended": 3}
        return sorted(cues, key=lambda cue: (cue.at, order.get(cue.kind, 2)))

    # ------------------------------------------------------------------ lifecycle

    async def recover(self, history: Sequence[Message]) -> None:
        events = [m for m in history if isinstance(m, MissionEvent)]
        if not events:
            return
        last = events[-1]
        self.fired = {f"{m.kind}:{m.name}" for m in events}
        self.met = {m.name for m in events if m.kind == "objective_met"}
        self.phase = next((m.name for m in reversed(events) if m.kind == "phase_started"), None)
        self.ended = any(m.kind == "mission_ended" for m in events)
        paused = last.kind == "paused"
        downtime = 0.0 if paused else max(0.0, time.time() - last.t) * self.session.speed
        self._set_clock(last.mission_time + downtime, paused=paused)
        # Cues before the last event that never fired were skipped by the trainer.
        for cue in self._timeline():
            if cue.at < last.mission_time:
                self.fired.add(cue.key)
        if not paused and not self.ended:
            self._missed = await asyncio.to_thread(self._transcripts_since, last.t)

    def _transcripts_since(self, since: float) -> list[Transcript]:
        if self.session.log_path is None or not Path(self.session.log_path).exists():
            return []
        from twin.log import LogReader

        with LogReader(self.session.log_path) as reader:
            return [m for m in reader.messages(types=["transcript"], since=since)
                    if isinstance(m, Transcript) and m.final]

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
        return {"mission_time": self.mission_time(), "paused": self.paused, "ended": self.ended,
                "phase": self.phase, "met": sorted(self.met)}

    async def _run_clock(self) -> None:
        tick = self.settings.tick_s if isinstance(self.settings, MissionDirectorSettings) else 0.25
        missed, self._missed = self._missed, []
        for transcript in missed:  # what the operator said while this actor was down
            await self._heard(transcript)
        while not self.ended:
            now = self.mission_time()
            for cue in self._cues:
                if cue.key in self.fired or cue.at > now:
                    continue
                await self._fire(cue, max(cue.at, 0.0), reason=self._reasons.get(cue.key, ""))
                if self.ended:
                    return
            if not self.paused:
                await self._settle()
            now = self.mission_time()
            upcoming = [cue.at for cue in self._cues if cue.key not in self.fired]
            upcoming += [c.after for c in self._state_conditions()
                         if c.after is not None and c.after > now]
            wait = tick
            if upcoming and not self.paused:
                wait = min(tick, max(0.0, (min(upcoming) - now) / self.session.speed))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    # ------------------------------------------------------------------ conditions

    def _holds(self, condition: Condition, now: float) -> bool:
        """The state clauses of ``condition`` (its words clauses are checked by the caller)."""
        return (
            all(f"inject:{name}" in self.fired for name in condition.fired)
            and all(name in self.met for name in condition.met)
            and (condition.phase is None or condition.phase == self.phase)
            and (condition.after is None or now >= condition.after)
        )

    def _open_objectives(self) -> list[tuple[Objective, Condition]]:
        return [(o, o.when) for o in self.mission.objectives
                if o.when is not None and o.id not in self.met]

    def _open_injects(self) -> list[tuple[Inject, Condition]]:
        if not self.training:
            return []
        return [(i, i.when) for i in self.mission.injects
                if i.when is not None and (i.repeat or f"inject:{i.id}" not in self.fired)]

    def _open(self, item: Objective | Inject) -> bool:
        """Still to meet or fire, checked again right before it happens: the clock and the
        operator's words settle concurrently (each waits on the bus between two events)."""
        if isinstance(item, Objective):
            return item.id not in self.met and not self.ended
        return (item.repeat or f"inject:{item.id}" not in self.fired) and not self.ended

    def _phase_exit(self) -> Condition | None:
        phase = next((p for p in self.mission.phases if p.id == self.phase), None)
        return phase.until if phase is not None else None

    def _state_conditions(self) -> list[Condition]:
        conditions = [c for _, c in self._open_objectives()] + [c for _, c in self._open_injects()]
        exit_condition = self._phase_exit()
        if exit_condition is not None:
            conditions.append(exit_condition)
        return [c for c in conditions if not c.on_speech]

    async def _settle(self) -> None:
        """Fire what the mission's state now allows, until nothing more changes."""
        changed = True
        while changed and not self.ended and not self.paused:
            changed = False
            now = self.mission_time()
            for objective, condition in self._open_objectives():
                if (not condition.on_speech and self._holds(condition, now)
                        and self._open(objective)):
                    await self._meet(objective, now, "its condition held")
                    changed = True
            for inject, condition in self._open_injects():
                if (not condition.on_speech and self._holds(condition, now)
                        and self._open(inject)):
                    await self._fire(Cue(now, "inject", inject.id), now,
                                     reason="its condition held")
                    changed = True
            exit_condition = self._phase_exit()
            if (exit_condition is not None and not exit_condition.on_speech
                    and self._holds(exit_condition, now)):
                self._end_phase(now, "its exit condition held")
                return  # the clock fires the next phase

    async def _heard(self, transcript: Transcript) -> None:
        """Check the conditions on the operator's words against a final transcript."""
        if self.ended or self.paused:
            return
        now = self.mission_time()
        turn = f" (turn {transcript.turn})" if transcript.turn is not None else ""
        for objective, condition in self._open_objectives():
            words = said(condition, transcript.text) if condition.on_speech else None
            if words is not None and self._holds(condition, now) and self._open(objective):
                await self._meet(objective, now, f"the operator said {words!r}{turn}")
        for inject, condition in self._open_injects():
            words = said(condition, transcript.text) if condition.on_speech else None
            if words is not None and self._holds(condition, now) and self._open(inject):
                await self._fire(Cue(now, "inject", inject.id), now,
                                 reason=f"the operator said {words!r}{turn}")
        exit_condition = self._phase_exit()
        if exit_condition is not None and exit_condition.on_speech:
            words = said(exit_condition, transcript.text)
            if words is not None and self._holds(exit_condition, now):
                self._end_phase(now, f"the operator said {words!r}{turn}")
        await self._settle()
        self._changed.set()

    def _end_phase(self, now: float, why: str, *, trainer: bool = False) -> None:
        """Move the clock to the next phase's start; the rest of this phase does not happen.
        (Each trainer's skip moves on a phase; an exit condition only ends the running one.)"""
        if self.phase is not None and not trainer:
            phase = next(p for p in self.mission.phases if p.id == self.phase)
            if now >= self.mission.phase_start(phase.id) + phase.duration:
                return  # already at its end (ended a moment ago): the next phase is due
        starts = [c for c in self._cues if c.kind == "phase_started" and c.at > now]
        target = starts[0] if starts else next(c for c in self._cues if c.kind == "mission_ended")
        for cue in self._cues:  # what the jump passes over does not fire late
            if now <= cue.at < target.at and cue.kind == "inject":
                self.fired.add(cue.key)
        if self.phase is not None:
            self._reasons[target.key] = f"phase {self.phase!r} ended early: {why}"
        self._set_clock(max(target.at, now), paused=self.paused)

    # ------------------------------------------------------------------ publishing

    async def _meet(self, objective: Objective, now: float, reason: str) -> None:
        self.met.add(objective.id)
        self.fired.add(f"objective_met:{objective.id}")
        await self.publish(MissionEvent(kind="objective_met", mission=self.mission.name,
                                        mission_time=round(now, 3), name=objective.id,
                                        text=f"Objective met: {objective.text}",
                                        reason=reason))

    async def _fire(self, cue: Cue, mission_time: float, note: str = "", reason: str = "") -> None:
        self.fired.add(cue.key)
        mission = self.mission
        text, priority, facts = note, "routine", []
        if cue.kind == "phase_started":
            phase = next(p for p in mission.phases if p.id == cue.name)
            self.phase = phase.id
            text = f"{phase.title}. {phase.briefing}".strip()
        elif cue.kind == "inject":
            inject = next(i for i in mission.injects if i.id == cue.name)
            said_it = inject.source and not inject.text.startswith(inject.source)
            source = f"{inject.source}: " if said_it else ""
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
                reason=reason,
            )
        )

    async def on_message(self, message: Message) -> None:
        if self.ended:
            return
        if isinstance(message, Transcript):
            if message.final and message.speaker == "operator":
                await self._heard(message)
            return
        if not isinstance(message, TrainerControl):
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
            self._end_phase(now, "skipped by the trainer", trainer=True)
        elif command == "inject":
            inject = next((i for i in self.mission.injects if i.id == message.argument), None)
            if inject is None:
                known = ", ".join(i.id for i in self.mission.injects) or "none"
                raise ValueError(f"no inject {message.argument!r} in this mission (known: {known})")
            await self._fire(Cue(now, "inject", inject.id), now, reason="fired by the trainer")
        elif command == "end":
            await self._fire(Cue(now, "mission_ended", self.mission.name), now,
                             note=message.argument or "ended by the trainer",
                             reason="ended by the trainer")
        self._changed.set()

    async def _publish_control(self, kind: MissionEventKind, now: float, note: str) -> None:
        await self.publish(
            MissionEvent(kind=kind, mission=self.mission.name, mission_time=round(now, 3),
                         text=note, reason="trainer")
        )
