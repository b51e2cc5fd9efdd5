"""The Dialogue actor's control flow with a fake chat model (the component under test is the
actor — decision first, checked streaming, fallbacks, deferred reports — not the model)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import actors.dialogue as dialogue_module
from actors.dialogue import Dialogue, ungrounded
from twin.actor import SessionInfo
from twin.config import load_mission
from twin.messages import (
    ActorError,
    Metric,
    MissionEvent,
    Speech,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinDecision,
    TwinUtterance,
)
from twin.testing import Harness

pytestmark = pytest.mark.unit

MISSION = load_mission(Path(__file__).resolve().parents[2] / "missions" / "route_clearance.yaml")


class Passage:
    def __init__(self, id: str, text: str) -> None:
        self.id, self.source, self.text = id, id.split("#")[0], text


class FakeKnowledge:
    """Fixed passages with fixed scores: the retrieval is not under test here."""

    def __init__(self) -> None:
        self.results = [
            (Passage("comms#1", "Radio nets > Troop net: Primary 44.175 MHz; users BULLDOG 0 "
                     "to 5."), 0.8),
            (Passage("route#2", "Checkpoints > CP3: CEDAR at km 11.6, grid 33T VM 5120 7180."),
             0.5),
        ]

    def search(self, query: str, k: int = 4) -> list[tuple[Passage, float]]:
        return self.results[:k]


class RecordingChat(GenericFakeChatModel):
    """A fake chat model that streams a scripted reply and records what it was given."""

    seen: ClassVar[list[Any]] = []

    def _stream(self, messages: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        RecordingChat.seen.append(messages)
        return super()._stream(messages, *args, **kwargs)


def make(monkeypatch: pytest.MonkeyPatch, replies: list[str] | Exception) -> Dialogue:
    def fake_chat(settings: Any) -> Any:
        if isinstance(replies, Exception):
            error = replies

            class Broken(GenericFakeChatModel):
                def _stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
                    raise error

            return Broken(messages=iter([]))
        return RecordingChat(messages=iter([AIMessage(content=r) for r in replies]))

    monkeypatch.setattr(dialogue_module, "chat_model", fake_chat)
    monkeypatch.setattr(Dialogue, "_load_knowledge", lambda self: FakeKnowledge())
    RecordingChat.seen = []
    return Dialogue({"reports": True}, name="dialogue",
                    session=SessionInfo(id="test", mission=MISSION))


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


def question(text: str, turn: int) -> Transcript:
    return Transcript(text=text, final=True, confidence=0.95, turn=turn)


def replies_of(harness: Harness, turn: int) -> list[TwinUtterance]:
    return [m for m in harness.probe.messages(TwinUtterance) if m.turn == turn]


def test_decision_first_then_grounded_sentences_and_an_invented_value_is_cut(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # warm-up reply, then the answer: one grounded sentence, then one with an invented value
    actor = make(monkeypatch, ["Ready.", "The troop net is on 44.175 MHz. "
                               "Switch to 51.2 MHz at CEDAR."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on?", 1))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            kinds = [type(m) for m in harness.probe.received
                     if m.turn == 1 and isinstance(m, (TwinDecision, TwinUtterance))]
            assert kinds[0] is TwinDecision  # the decision is on the bus before any sentence
            decision = harness.probe.messages(TwinDecision)[0]
            assert decision.intent == "answer" and decision.evidence[0].id == "comms#1"
            texts = [m.text for m in replies_of(harness, 1)]
            assert "44.175" in texts[0]  # the grounded sentence first
            assert not any("51.2" in text for text in texts)  # the invented value never spoken
            assert [m.index for m in replies_of(harness, 1)] == list(range(len(texts)))
            rejected = [m for m in harness.probe.messages(Metric)
                        if m.name == "dialogue_sentences_rejected"]
            assert rejected and "51.2" in rejected[0].labels["why"]
            prompt = " ".join(str(m.content) for m in RecordingChat.seen[-1])
            assert "44.175" in prompt and "What frequency" in prompt

    run(scenario())


def test_a_failing_model_gives_the_grounded_reply_never_silence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, RuntimeError("model crashed"))

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on?", 2))
            final = await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final)
            spoken = " ".join(m.text for m in replies_of(harness, 2))
            assert "44.175" in spoken and final.intent == "answer"
            error = await harness.wait_for(ActorError)
            assert "model crashed" in error.error and error.recoverable

    run(scenario())


def test_the_model_waits_for_the_grounded_sentence_to_be_voiced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "The troop net is on 44.175 MHz."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await asyncio.sleep(0.2)  # the warm-up has used the model once
            warm = len(RecordingChat.seen)
            await harness.send(question("What frequency is the troop net on?", 1))
            first = await harness.wait_for(TwinUtterance, lambda m: m.turn == 1)
            await asyncio.sleep(0.3)
            assert len(RecordingChat.seen) == warm  # the voice first: no prompt yet
            await harness.send(Speech(text=first.text, index=0, final=False, pcm=b"\0\0",
                                      turn=1), source="lipsync")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final,
                                   timeout=0.5)  # well inside speech_wait_s (1 s)
            assert len(RecordingChat.seen) == warm + 1

    run(scenario())


def test_a_report_waits_while_the_operator_speaks(monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready."])
    inject = next(i for i in MISSION.injects if i.priority == "flash")

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(SpeechStarted(at=1.0, turn=3), source="speech")
            await harness.send(MissionEvent(kind="inject", mission=MISSION.name,
                                            mission_time=inject.at, name=inject.id,
                                            text=inject.text, priority="flash"))
            await asyncio.sleep(0.3)
            assert harness.probe.messages(TwinUtterance) == []  # not over the operator
            await harness.send(SpeechEnded(at=2.0, duration=1.0, turn=3), source="speech")
            report = await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            assert report.turn is not None and report.turn > dialogue_module.REPORT_TURNS
            assert report.expression == "urgent"

    run(scenario())


async def hold_a_routine_report(harness: Harness) -> None:
    """The operator speaks (turn 3) while a routine inject comes in; their turn ends."""
    inject = next(i for i in MISSION.injects if i.priority != "flash")
    await harness.send(SpeechStarted(at=1.0, turn=3), source="speech")
    await harness.send(MissionEvent(kind="inject", mission=MISSION.name, mission_time=3.0,
                                    name=inject.id, text=inject.text, priority=inject.priority))
    await harness.send(SpeechEnded(at=2.0, duration=1.0, turn=3), source="speech")


def test_the_answer_goes_before_a_report_held_while_the_operator_spoke(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await hold_a_routine_report(harness)
            await asyncio.sleep(0.2)  # the transcript comes a little after the turn's end
            await harness.send(Transcript(text="What is the troop net frequency?", final=True,
                                          turn=3), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            first = [m for m in harness.probe.messages(TwinUtterance) if m.index == 0]
            assert first[0].turn == 3 and first[0].intent == "answer"
            assert first[1].intent == "report"

    run(scenario())


def test_a_held_report_is_said_anyway_when_no_transcript_comes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await hold_a_routine_report(harness)
            await asyncio.sleep(0.5)
            assert harness.probe.messages(TwinUtterance) == []  # waiting for an answer
            report = await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            assert report.turn is not None and report.turn > dialogue_module.REPORT_TURNS

    run(scenario())


def test_ungrounded_rules() -> None:
    grounds = "Troop net: Primary 44.175 MHz; users BULLDOG 0 to 5."
    assert ungrounded("The troop net is 44.175 MHz.", grounds) is None
    assert "51.2" in (ungrounded("Use 51.2 MHz.", grounds) or "")
    assert ungrounded("Satellites orbit the International Space Organisation.", grounds)
    assert ungrounded("Troop net primary.", grounds, already=["The troop net primary"])
