"""A conversation with the twin's mind outside a session: the real Dialogue actor on a LocalBus,
fed questions (typed, or as the session sends them while an operator speaks: :func:`speak`) and
the mission's events, with each reply collected as it is spoken.

``twin chat`` (a terminal conversation) and ``twin eval dialogue`` (scores on a question file)
both talk to the twin through :class:`Talk`, and ``twin bench dialogue`` speaks its questions
with :func:`speak`; nothing else of a session runs (no Ray, no audio, no mission clock: an
inject or a phase happens when asked for, at its own mission time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from twin.actor import SessionInfo
from twin.config import Mission
from twin.messages import (
    Metric,
    MissionEvent,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinDecision,
    TwinUtterance,
)
from twin.testing import Harness

__all__ = ["WORD_S", "Exchange", "Talk", "UnknownEvent", "speak"]

WORD_S = 0.3
"""About how long an operator takes to say a word on the radio."""
PARTIAL_S = 0.5
"""How often the speech recogniser publishes a partial transcript (its default)."""


async def speak(harness: Harness, text: str, turn: int) -> None:
    """Send what the session sends while the operator says ``text``, in about the time they
    take to say it: ``SpeechStarted``, a partial transcript every half second with the words
    said so far, ``SpeechEnded``. The final transcript is the caller's to send, at once: a
    session sends it only after its end-of-turn wait (a pause of ``end_silence_ms``) and the
    last decode, which times counted from the final transcript leave out."""
    words = text.split()
    await harness.send(SpeechStarted(at=0.0, turn=turn), source="speech")
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) + PARTIAL_S < WORD_S * len(words):
        await asyncio.sleep(PARTIAL_S)
        said = words[: int((elapsed + PARTIAL_S) / WORD_S)]
        await harness.send(Transcript(text=" ".join(said), final=False, confidence=0.9,
                                      turn=turn), source="speech")
    await asyncio.sleep(max(0.0, WORD_S * len(words) - (time.monotonic() - started)))
    await harness.send(SpeechEnded(at=WORD_S * len(words), duration=WORD_S * len(words),
                                   turn=turn), source="speech")


class UnknownEvent(ValueError):
    """An inject or phase id the mission does not have."""


@dataclass
class Exchange:
    """One turn: what triggered it, the twin's decision and what it said."""

    turn: int
    asked: str
    decision: TwinDecision
    sentences: list[str]
    first_sentence_ms: float | None = None
    rejected: list[str] = field(default_factory=list)
    hedged_why: str = ""

    @property
    def reply(self) -> str:
        return " ".join(sentence for sentence in self.sentences if sentence)


class Talk:
    """The Dialogue actor (``settings`` as in a config's ``actors.dialogue.settings``) for
    ``mission``, driven turn by turn. Use as an async context manager.

    ``spoken``: questions arrive as in a session, in the time an operator takes to say them
    (:func:`speak`), and a report is given the time it takes to say before anything else
    happens; the twin's model reads ahead meanwhile, as it does in a session, and the first
    sentence of a reply is timed from the final transcript, sent as the voice ends. Else
    everything is typed and arrives at once."""

    def __init__(self, mission: Mission, settings: dict[str, Any] | None = None, *,
                 reply_timeout_s: float = 300.0, spoken: bool = False) -> None:
        from actors.dialogue import Dialogue

        self.mission = mission
        self.actor = Dialogue(dict(settings or {}), name="dialogue",
                              session=SessionInfo(id="conversation", mission=mission))
        self.harness = Harness(self.actor)
        self.reply_timeout_s = reply_timeout_s
        self.spoken = spoken
        self.turn = 0
        self.mission_time = 0.0
        self.happened: set[str] = set()  # inject and phase ids already sent

    async def __aenter__(self) -> Talk:
        await self.harness.__aenter__()
        self.happened.add(self.mission.phases[0].id)  # the mind starts in the first phase
        with contextlib.suppress(TimeoutError):  # published at the end of the actor's start
            await self.harness.wait_for(Metric, lambda m: m.name == "dialogue_ready_s", 5.0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.harness.__aexit__(*exc)

    @property
    def ready_s(self) -> float | None:
        """How long the model took to read the mission at the start."""
        metrics = [m for m in self.harness.probe.messages(Metric) if m.name == "dialogue_ready_s"]
        return metrics[0].value if metrics else None

    async def ask(self, text: str) -> Exchange:
        """Send ``text`` as a final transcript (spoken: after what the session sends while the
        operator says it); the twin's reply."""
        self.turn += 1
        if self.spoken:
            await speak(self.harness, text, self.turn)
        await self.harness.send(Transcript(text=text, final=True, typed=True, turn=self.turn),
                                source="typed")
        return await self._exchange(self.turn, text)

    async def inject(self, inject_id: str) -> list[Exchange]:
        """Make an inject happen now (and the phases before it); the twin's reports of them."""
        inject = next((i for i in self.mission.injects if i.id == inject_id), None)
        if inject is None:
            known = ", ".join(i.id for i in self.mission.injects)
            raise UnknownEvent(f"no inject {inject_id!r} in mission {self.mission.name!r} "
                               f"(injects: {known})")
        at = max(self.mission_time, inject.at if inject.at is not None else 0.0)
        reports = []
        start = 0.0
        for phase in self.mission.phases:  # the phases that began before it
            if start <= at and phase.id not in self.happened:
                reports += await self._phase(phase.id, start)
            start += phase.duration
        self.happened.add(inject.id)
        self.mission_time = at
        event = MissionEvent(kind="inject", mission=self.mission.name, mission_time=at,
                             name=inject.id, text=" ".join(inject.text.split()),
                             priority=inject.priority, facts=list(inject.facts))
        return reports + await self._event(event)

    async def _phase(self, phase_id: str, at: float) -> list[Exchange]:
        phase = next(p for p in self.mission.phases if p.id == phase_id)
        self.happened.add(phase.id)
        self.mission_time = max(self.mission_time, at)
        event = MissionEvent(kind="phase_started", mission=self.mission.name, mission_time=at,
                             name=phase.id, text=f"{phase.title}. {phase.briefing}".strip())
        return await self._event(event)

    async def _event(self, event: MissionEvent) -> list[Exchange]:
        seen = len(self._reports())
        sent = time.time()
        await self.harness.send(event, source="mission")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and len(self._reports()) == seen:
            await asyncio.sleep(0.05)
        reports = [await self._exchange(decision.turn or 0, event.text)
                   for decision in self._reports()[seen:]]
        if self.spoken and reports:  # the twin says them, and reads ahead meanwhile
            said = sum(len(report.reply.split()) for report in reports)
            with contextlib.suppress(TimeoutError):
                await self.harness.wait_for(
                    Metric, lambda m: m.name == "dialogue_prefill_ms" and m.t > sent,
                    WORD_S * said)
        return reports

    def _reports(self) -> list[TwinDecision]:
        return [m for m in self.harness.probe.messages(TwinDecision) if m.trigger == "report"]

    async def _exchange(self, turn: int, asked: str) -> Exchange:
        timeout = self.reply_timeout_s
        decision = await self.harness.wait_for(TwinDecision, lambda m: m.turn == turn, timeout)
        await self.harness.wait_for(TwinUtterance, lambda m: m.turn == turn and m.final, timeout)
        sentences = [m.text for m in self.harness.probe.messages(TwinUtterance)
                     if m.turn == turn and m.text]
        metrics = [m for m in self.harness.probe.messages(Metric) if m.turn == turn]
        first = next((m.value for m in metrics if m.name == "dialogue_first_sentence_ms"), None)
        rejected = [m.labels.get("why", "") for m in metrics
                    if m.name == "dialogue_sentences_rejected"]
        hedged = next((m.labels.get("why", "") for m in metrics if m.name == "dialogue_hedged"),
                      "")
        return Exchange(turn, asked, decision, sentences, first, rejected, hedged)
