"""The Dialogue actor's control flow with a fake chat model (the component under test is the
actor — decision first, checked streaming, fallbacks, deferred reports — not the model)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import actors.dialogue as dialogue_module
from actors.dialogue import (
    _NOT_IN_NOTES,
    Dialogue,
    _echoes_instructions,
    _repeats,
    _said_before,
)
from twin.actor import SessionInfo
from twin.config import load_mission
from twin.messages import (
    ActorError,
    Entity,
    Interrupt,
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
    delay_s: ClassVar[float] = 0.0  # per chunk: a model that takes its time
    written: ClassVar[int] = 0  # chunks streamed, all replies

    def _stream(self, messages: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        RecordingChat.seen.append(messages)
        for chunk in super()._stream(messages, *args, **kwargs):
            time.sleep(RecordingChat.delay_s)
            RecordingChat.written += 1
            yield chunk


def make(monkeypatch: pytest.MonkeyPatch, replies: list[str] | Exception,
         **settings: Any) -> Dialogue:
    """The actor with a fake chat model; the first reply is read by the warm-up."""
    def fake_chat(chat: Any) -> Any:
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
    RecordingChat.written = 0
    return Dialogue({"reports": True, "prefill": False, **settings}, name="dialogue",
                    session=SessionInfo(id="test", mission=MISSION))


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


def question(text: str, turn: int) -> Transcript:
    return Transcript(text=text, final=True, confidence=0.95, turn=turn)


def replies_of(harness: Harness, turn: int) -> list[TwinUtterance]:
    return [m for m in harness.probe.messages(TwinUtterance) if m.turn == turn]


def roles_and_texts(messages: Any) -> list[tuple[str, str]]:
    """A prompt the fake model was given, as (type, text) pairs."""
    return [(message.type, str(message.content)) for message in messages]


def test_decision_first_then_checked_sentences_and_an_invented_value_is_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # phrase (the default): the model writes the reply; the sentence with an invented value is
    # dropped and the next good one is still spoken
    actor = make(monkeypatch, ["Ready.", "The troop net is on 44.175 MHz. Switch to 51.2 MHz "
                               "at CEDAR. The alternate is 46.900 MHz."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on?", 1))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            kinds = [type(m) for m in harness.probe.received
                     if m.turn == 1 and isinstance(m, (TwinDecision, TwinUtterance))]
            assert kinds[0] is TwinDecision  # the decision is on the bus before any sentence
            decision = harness.probe.messages(TwinDecision)[0]
            assert decision.intent == "answer" and decision.evidence[0].id == "comms#1"
            assert not decision.hedge
            replies = replies_of(harness, 1)
            texts = [m.text for m in replies]
            assert texts == ["The troop net is on 44.175 MHz.", "The alternate is 46.900 MHz.",
                             ""]  # the model's checked sentences, then the end of the reply
            assert [m.index for m in replies] == list(range(len(texts)))
            rejected = [m for m in harness.probe.messages(Metric)
                        if m.name == "dialogue_sentences_rejected"]
            assert rejected and "51.2" in rejected[0].labels["why"]
            assert not [m for m in harness.probe.messages(Metric) if m.name == "dialogue_hedged"]
            # the warm-up read the same stable prefix the answer's prompt starts with
            warm, answer = (roles_and_texts(m) for m in RecordingChat.seen)
            assert warm[0] == answer[0] and warm[0] == ("system", actor.mind.prefix)
            assert answer[-1][0] == "human" and "What frequency is the troop net on?" in \
                answer[-1][1]
            ready = [m for m in harness.probe.messages(Metric) if m.name == "dialogue_ready_s"]
            assert len(ready) == 1 and ready[0].labels["warm"] == "true"
            assert ready[0].labels["notes"] == "all"

    run(scenario())


def test_a_grid_the_operator_read_out_may_be_said_back_in_the_missions_form(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Heard as "12345678", the grid is 1234 5678 in the mission's form (an entity of the
    transcript): the model may say it back so; a grid nobody said is still dropped."""
    actor = make(monkeypatch, ["Ready.", "Marker at 1234 5678 noted. Cordon from 1234 5679."])
    heard = "Marker at 12345678. Give me the drill."
    grid = Entity(kind="grid", text="1234 5678", heard="12345678", start=10, end=18,
                  known=False)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(Transcript(text=heard, final=True, confidence=0.95, turn=1,
                                          entities=[grid]))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            texts = [m.text for m in replies_of(harness, 1) if m.text]
            assert "Marker at 1234 5678 noted." in texts
            assert not any("5679" in text for text in texts)
            asked = roles_and_texts(RecordingChat.seen[-1])[-1][1]
            assert "Marker at 1234 5678." in asked  # the mind reads the mission's form

    run(scenario())


def test_a_model_that_left_the_evidence_twice_before_saying_anything_is_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sentences dropped and nothing said: the grounded reply at once, not the rest of a
    reply the operator waits for in silence."""
    wandering = ("Switch to 51.2 MHz now. Call VIPER on 51.3 MHz. " + "Then try 51.4 MHz. " * 20
                 + "The troop net is 44.175 MHz.")
    actor = make(monkeypatch, ["Ready.", wandering])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on?", 1))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            spoken = " ".join(m.text for m in replies_of(harness, 1))
            assert spoken.startswith("I am not certain.") and "44.175" in spoken
            assert "51." not in spoken
            assert RecordingChat.written < len(wandering.split()) // 2  # stopped early

    run(scenario())


def test_the_model_saying_the_notes_do_not_hold_it_becomes_a_hedge(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Believed when the evidence holds little of the question; else the evidence is given,
    marked unsure (a small model says "not in the notes" of what one line of them says)."""
    actor = make(monkeypatch, ["Ready.", *["I do not have that in the mission notes."] * 2])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What colour is the squadron leader's umbrella?", 1))
            final = await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            assert [m.text for m in replies_of(harness, 1)] == [final.text]
            assert final.text.startswith("I do not have that in the mission notes; check with ")
            assert final.confidence <= 0.3
            await harness.send(question("What frequency is the troop net on?", 2))
            final = await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final)
            assert final.text.startswith("I am not certain. The notes say: ")
            assert "44.175" in final.text and final.confidence <= 0.3
            hedged = [m for m in harness.probe.messages(Metric) if m.name == "dialogue_hedged"]
            assert hedged and hedged[0].labels["why"] == "the model found no answer in the notes"

    run(scenario())


def test_a_reply_with_no_sentence_that_passes_is_a_hedged_grounded_reply(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "Switch to 51.2 MHz now. Then call VIPER on the net."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on?", 1))
            final = await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            spoken = " ".join(m.text for m in replies_of(harness, 1))
            assert "51.2" not in spoken and "VIPER" not in spoken
            assert spoken.startswith("I am not certain.") and "44.175" in spoken
            assert final.confidence <= 0.3
            rejected = [m for m in harness.probe.messages(Metric)
                        if m.name == "dialogue_sentences_rejected"]
            assert "51.2" in rejected[0].labels["why"] and "VIPER" in rejected[0].labels["why"]

    run(scenario())


def test_a_failing_model_gives_the_grounded_reply_never_silence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, RuntimeError("model crashed"))

    async def scenario() -> None:
        async with Harness(actor) as harness:
            ready = await harness.wait_for(Metric, lambda m: m.name == "dialogue_ready_s")
            assert ready.labels["warm"] == "false"  # the warm-up failed quietly
            await harness.send(question("What frequency is the troop net on?", 2))
            final = await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final)
            spoken = " ".join(m.text for m in replies_of(harness, 2))
            assert "44.175" in spoken and final.intent == "answer"
            error = await harness.wait_for(ActorError)
            assert "model crashed" in error.error and error.recoverable

    run(scenario())


def test_the_next_prompt_extends_the_previous_one(monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "The troop net is on 44.175 MHz.",
                               "The alternate is 46.900 MHz."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on?", 1))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            await harness.send(question("And if it drops out?", 2))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final)
            first, second = (roles_and_texts(m) for m in RecordingChat.seen[1:])
            assert second[: len(first)] == first  # the same prefix and first turn, then more
            assert second[len(first)] == ("ai", "The troop net is on 44.175 MHz.")
            assert second[-1][0] == "human" and "And if it drops out?" in second[-1][1]
            assert len(second) == len(first) + 2

    run(scenario())


def test_extend_the_model_waits_for_the_grounded_sentence_to_be_voiced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "Users are BULLDOG 0 to 5. Switch to 51.2 MHz."],
                 llm_role="extend")

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await asyncio.sleep(0.2)  # the warm-up has used the model once
            warm = len(RecordingChat.seen)
            await harness.send(question("What frequency is the troop net on?", 1))
            first = await harness.wait_for(TwinUtterance, lambda m: m.turn == 1)
            assert "44.175" in first.text  # the policy's grounded sentence first
            await asyncio.sleep(0.3)
            assert len(RecordingChat.seen) == warm  # the voice first: no prompt yet
            await harness.send(Speech(text=first.text, index=0, final=False, pcm=b"\0\0",
                                      turn=1), source="lipsync")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final,
                                   timeout=0.5)  # well inside speech_wait_s (1 s)
            assert len(RecordingChat.seen) == warm + 1
            texts = [m.text for m in replies_of(harness, 1)]
            assert not any("51.2" in text for text in texts)  # the invented value cut

    run(scenario())


def test_a_flash_report_waits_while_the_operator_speaks_then_goes_first_unphrased(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "A phrased report would go here."])
    inject = next(i for i in MISSION.injects if i.priority == "flash")

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(SpeechStarted(at=1.0, turn=3), source="speech")
            await harness.send(MissionEvent(kind="inject", mission=MISSION.name,
                                            mission_time=inject.at, name=inject.id,
                                            text=inject.text, priority="flash",
                                            facts=list(inject.facts)))
            await asyncio.sleep(0.3)
            assert harness.probe.messages(TwinUtterance) == []  # not over the operator
            await harness.send(SpeechEnded(at=2.0, duration=1.0, turn=3), source="speech")
            report = await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            assert report.turn is not None and report.turn > dialogue_module.REPORT_TURNS
            assert report.expression == "urgent" and report.final
            assert report.text.startswith("Flash.")  # the policy's short report, at once
            assert len(RecordingChat.seen) == 1  # the warm-up only: no model for a flash

    run(scenario())


ROUTINE = next(i for i in MISSION.injects if i.priority == "routine")
ROUTINE_REPORT = "Dust from about 1000 local cuts visibility to 300-500 m until at least 1300."


async def hold_a_routine_report(harness: Harness) -> None:
    """The operator speaks (turn 3) while a routine inject comes in; their turn ends."""
    await harness.send(SpeechStarted(at=1.0, turn=3), source="speech")
    await harness.send(MissionEvent(kind="inject", mission=MISSION.name, mission_time=3.0,
                                    name=ROUTINE.id, text=ROUTINE.text,
                                    priority=ROUTINE.priority, facts=list(ROUTINE.facts)))
    await harness.send(SpeechEnded(at=2.0, duration=1.0, turn=3), source="speech")


def test_the_answer_goes_before_a_report_held_while_the_operator_spoke(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "The troop net is on 44.175 MHz.", ROUTINE_REPORT],
                 model_reports=True)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await hold_a_routine_report(harness)
            await asyncio.sleep(0.2)  # the transcript comes a little after the turn's end
            await harness.send(Transcript(text="What is the troop net frequency?", final=True,
                                          turn=3), source="speech")
            report = await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            first = [m for m in harness.probe.messages(TwinUtterance) if m.index == 0]
            assert first[0].turn == 3 and first[0].intent == "answer"
            assert first[1].intent == "report"
            # with model_reports a routine report is phrased by the model, checked
            assert report.text == ROUTINE_REPORT
            assert "New event, from" in str(RecordingChat.seen[-1][-1].content)

    run(scenario())


def test_a_held_report_is_said_anyway_when_no_transcript_comes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", ROUTINE_REPORT])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await hold_a_routine_report(harness)
            await asyncio.sleep(0.5)
            assert harness.probe.messages(TwinUtterance) == []  # waiting for an answer
            report = await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            assert report.turn is not None and report.turn > dialogue_module.REPORT_TURNS

    run(scenario())


def test_without_model_reports_a_report_is_spoken_from_the_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", ROUTINE_REPORT], model_reports=False)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(MissionEvent(kind="inject", mission=MISSION.name,
                                            mission_time=3.0, name=ROUTINE.id,
                                            text=ROUTINE.text, priority=ROUTINE.priority))
            report = await harness.wait_for(TwinUtterance, lambda m: m.intent == "report")
            assert report.final and report.text.startswith("Met update:")
            assert len(RecordingChat.seen) == 1  # the warm-up only

    run(scenario())


def test_the_model_saying_so_and_repeats() -> None:
    for said in ["I do not have that in the mission notes.", "I don't have the grid in my "
                 "notes.", "That is not in the notes."]:
        assert _NOT_IN_NOTES.search(said), said
    assert not _NOT_IN_NOTES.search("The notes say the troop net is 44.175 MHz.")
    for said in ["The water temperature right now is not specified.", "There is no "
                 "information on hotels.", "The notes do not mention a manager."]:
        assert _NOT_IN_NOTES.search(said), said  # the same, in a small model's words
    for said in ["The route is not given priority.", "Ellis was not given fluids.",
                 "Do not drive forward."]:
        assert not _NOT_IN_NOTES.search(said), said
    assert _repeats("Troop net primary.", ["The troop net primary"])
    assert _repeats("Troop net alternate.", ["The troop net primary"]) is None
    assert _repeats("The reason is that the helicopter cannot fly in 400 m visibility.",
                    ["No helicopter: it cannot fly in 400 m visibility."])
    report = "Dust at km 11.8. Visibility is now about 400 m on the route. Slowing to 3 km/h."
    assert _said_before("Visibility is now about 400 m on the route.", [report])  # copied
    assert _said_before("I am not certain.", ["I am not certain. The notes say: x."]) is None
    assert _said_before("Visibility 400 m means no helicopter.", [report]) is None
    assert _said_before("Yes.", ["Yes."]) is None  # too short to count
    assert _echoes_instructions("[acknowledge]: [report to BULLDOG 0, brief]")
    assert _echoes_instructions("The troop net is 44.175 MHz.") is None


def test_while_the_operator_speaks_the_model_reads_the_start_of_their_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "(read)", "(read)", "The alternate is 46.900 MHz."],
                 prefill=True)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(SpeechStarted(at=1.0, turn=1), source="speech")
            await harness.wait_for(Metric, lambda m: m.name == "dialogue_prefill_ms")
            head = RecordingChat.seen[-1]
            assert str(head[-1].content).endswith("BULLDOG 0 asks:")  # the turn, so far
            # the mission clock moves on while they speak: what was read stays the prompt's start
            await harness.send(MissionEvent(kind="objective_met", mission=MISSION.name,
                                            mission_time=30.0, name="x", text="Done."))
            await harness.send(Transcript(text="What's the troop net alter", final=False,
                                          turn=1), source="speech")
            await harness.wait_for(Metric, lambda m: m.name == "dialogue_prefill_ms"
                                   and len(RecordingChat.seen) == 3)
            heard = RecordingChat.seen[-1]
            # the words heard so far, but the last one (it may still change)
            assert str(heard[-1].content).endswith("BULLDOG 0 asks: What's the troop net")
            await harness.send(question("What's the troop net alternate?", 1), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            asked = RecordingChat.seen[-1]
            assert "troop net alternate" in str(asked[-1].content)
            # the question's prompt begins with everything the model read while it was asked
            for read in (head, heard):
                assert [m.content for m in asked[:-1]] == [m.content for m in read[:-1]]
                assert str(asked[-1].content).startswith(str(read[-1].content))
            # the time the operator began to ask, in the head; none after the question
            assert "T+00:00]" in str(asked[-1].content).splitlines()[0]
            assert "T+" not in str(asked[-1].content).splitlines()[-1]
            assert "46.900" in " ".join(m.text for m in replies_of(harness, 1))

    run(scenario())


def test_an_interrupted_reply_stops_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["apple", "river", "stone", "cloud", "bread", "chair", "table", "paper", "glass",
             "metal", "water", "light"]
    long = " ".join(f"The troop net check word is {word} today." for word in words)
    actor = make(monkeypatch, ["Ready.", long], prefill=False, max_sentences=8)
    monkeypatch.setattr(RecordingChat, "delay_s", 0.05)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("Read me everything about the troop net.", 1),
                               source="speech")
            decision = await harness.wait_for(TwinDecision, lambda m: m.turn == 1)
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.index == 0)
            await harness.send(Interrupt(target_turn=1), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            said = [m.text for m in replies_of(harness, 1) if m.text]
            # cut short: not written on to the length its style allows
            assert decision.style != "brief" and len(said) == 1
            # and the model stopped writing then (not at the end of what it had to say)
            assert RecordingChat.written < len(long.split()) / 2

    run(scenario())


def test_a_new_question_stops_the_reply_still_being_written(
        monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["apple", "river", "stone", "cloud", "bread", "chair", "table", "paper", "glass",
             "metal", "water", "light"]
    long = " ".join(f"The troop net check word is {word} today." for word in words)
    actor = make(monkeypatch, ["Ready.", long, "Fuel is fine."], prefill=False, max_sentences=8)
    monkeypatch.setattr(RecordingChat, "delay_s", 0.05)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("Read me everything about the troop net.", 1),
                               source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.index == 0)
            await harness.send(question("What's our fuel state?", 2), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final, timeout=10)
            # the first reply stopped when the second question came, not at its end
            assert RecordingChat.written < len(long.split()) / 2 + 3  # + "Fuel is fine."
            assert "Fuel is fine." in [m.text for m in replies_of(harness, 2)]

    run(scenario())


def speculative(text: str, turn: int) -> Transcript:
    return Transcript(text=text, final=False, speculative=True, confidence=0.95, turn=turn)


def test_a_reply_started_at_the_pause_is_taken_by_the_final_transcript(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The model starts on the speculative transcript, saying nothing; the final transcript
    with the same words takes what it wrote (the model is not asked again)."""
    actor = make(monkeypatch, ["Ready.", "The alternate is 46.900 MHz."])
    monkeypatch.setattr(RecordingChat, "delay_s", 0.02)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            asked = "What's the troop net alternate?"
            await harness.send(speculative(asked, 1), source="speech")
            for _ in range(200):
                if RecordingChat.written >= 3:
                    break
                await asyncio.sleep(0.01)
            assert RecordingChat.written >= 3 and len(RecordingChat.seen) == 2  # it began
            assert harness.probe.messages(TwinDecision) == []  # and nothing was said
            assert replies_of(harness, 1) == []
            await harness.send(question(asked, 1), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            assert len(RecordingChat.seen) == 2  # the same generation, not a second one
            assert "46.900" in " ".join(m.text for m in replies_of(harness, 1))
            adopted = await harness.wait_for(Metric, lambda m: m.name == "dialogue_speculation")
            assert adopted.labels["outcome"] == "adopted" and adopted.turn == 1

    run(scenario())


def test_a_reply_started_at_the_pause_is_dropped_unsaid_when_the_operator_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "The primary is 44.175 MHz.",
                               "The alternate is 46.900 MHz."])
    monkeypatch.setattr(RecordingChat, "delay_s", 0.02)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(speculative("What's the troop net?", 1), source="speech")
            for _ in range(200):
                if RecordingChat.written >= 2:
                    break
                await asyncio.sleep(0.01)
            # the voice goes on: a partial of the same turn with more words
            await harness.send(Transcript(text="What's the troop net alternate", final=False,
                                          turn=1), source="speech")
            dropped = await harness.wait_for(Metric, lambda m: m.name == "dialogue_speculation")
            assert dropped.labels["outcome"] == "dropped"
            await harness.send(question("What's the troop net alternate?", 1), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            said = " ".join(m.text for m in replies_of(harness, 1))
            assert "46.900" in said and "44.175" not in said  # the dropped reply was not said
            assert len(RecordingChat.seen) == 3
            assert "troop net alternate" in str(RecordingChat.seen[-1][-1].content)
            assert len(harness.probe.messages(TwinDecision)) == 1

    run(scenario())


def test_a_turn_the_operator_went_on_with_is_not_answered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn 1 ended at a pause, the operator went on (the recogniser withdraws it with an
    interrupt) before the model's first sentence: nothing is said for it, not even a hedge;
    turn 2, which holds the whole question, is answered."""
    actor = make(monkeypatch, ["Ready.", "The primary net is 44.175 MHz today.",
                               "The alternate is 46.900 MHz."])
    monkeypatch.setattr(RecordingChat, "delay_s", 0.05)

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What's the troop net?", 1), source="speech")
            await harness.wait_for(TwinDecision, lambda m: m.turn == 1)
            await harness.send(Interrupt(target_turn=1, reason="operator went on", turn=2),
                               source="speech")
            await harness.send(question("What's the troop net alternate?", 2), source="speech")
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final)
            assert [m.text for m in replies_of(harness, 1) if m.text] == []
            assert "46.900" in " ".join(m.text for m in replies_of(harness, 2))

    run(scenario())


def test_a_two_part_question_is_answered_part_by_part_in_one_reply(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The model answers the first question; then the turn's second is asked of it, after its
    first answer, and both answers are one reply (one turn, indexed on)."""
    actor = make(monkeypatch, ["Ready.", "The troop net is on 44.175 MHz.",
                               "CEDAR is at km 11.6."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("What frequency is the troop net on, and where is "
                                        "CEDAR?", 1))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            decision = harness.probe.messages(TwinDecision)[0]
            assert any("2 questions" in reason for reason in decision.reasons)
            assert [m.text for m in replies_of(harness, 1)] == [
                "The troop net is on 44.175 MHz.", "CEDAR is at km 11.6.", ""]
            first, second = (roles_and_texts(m) for m in RecordingChat.seen[1:])
            assert "first question only" in first[-1][1]
            assert second[: len(first)] == first  # the follow-up extends the same prompt
            assert second[len(first)] == ("ai", "The troop net is on 44.175 MHz.")
            assert second[-1][0] == "human" and "asks: Where is CEDAR?" in second[-1][1]
            # both parts are in the conversation the next turn extends
            assert [said for _, said in actor.mind.conversation.turns] == [
                "The troop net is on 44.175 MHz.", "CEDAR is at km 11.6."]

    run(scenario())


def test_a_follow_up_is_not_asked_when_the_first_answer_was_not_the_models(
        monkeypatch: pytest.MonkeyPatch) -> None:
    actor = make(monkeypatch, ["Ready.", "I do not have that in the mission notes.",
                               "CEDAR is at km 11.6."])

    async def scenario() -> None:
        async with Harness(actor) as harness:
            await harness.send(question("Is the troop net up, and where is CEDAR?", 1))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 1 and m.final)
            assert len(RecordingChat.seen) == 2  # the warm-up and the first question only
            hedged = [m for m in harness.probe.messages(Metric) if m.name == "dialogue_hedged"]
            assert len(hedged) == 1

    run(scenario())


def test_a_restarted_dialogue_catches_up_from_the_session_log(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """After a crash: the conversation so far (what the model answered), what was reported
    and the mission's events come back from the log, so a follow-up still works and a routine
    report is not said twice."""
    from twin.log import LogReader, SessionLog
    from twin.messages import EvidenceRef

    log_path = tmp_path / "s.db"
    log = SessionLog.create(log_path, {"session": "test"})
    inject = next(i for i in MISSION.injects if i.priority == "routine")
    event = MissionEvent(kind="inject", mission=MISSION.name, mission_time=15.0, name=inject.id,
                         text=inject.text, priority=inject.priority, facts=list(inject.facts),
                         source="mission", seq=0, t=1.0)
    log.append([
        event,
        TwinDecision(trigger="report", intent="report", style="brief", hedge=False,
                     confidence=1.0, turn=1_000_001, source="dialogue", seq=0, t=1.1,
                     evidence=[EvidenceRef(id=f"event:{inject.id}", source="met", score=1.0,
                                           text=inject.text)]),
        TwinUtterance(text="Met update.", index=0, final=True, intent="report",
                      turn=1_000_001, source="dialogue", seq=1, t=1.2),
        question("What frequency is the troop net on?", 1),
        TwinDecision(trigger="question", intent="answer", style="brief", hedge=False,
                     confidence=0.9, question="What frequency is the troop net on?", turn=1,
                     source="dialogue", seq=2, t=2.1),
        TwinUtterance(text="The troop net is on 44.175 MHz.", index=0, final=False, turn=1,
                      source="dialogue", seq=3, t=2.2),
        TwinUtterance(text="", index=1, final=True, turn=1, source="dialogue", seq=4, t=2.3),
    ])
    log.close()
    actor = make(monkeypatch, ["Ready.", "The alternate is 46.900 MHz."])
    actor.session = SessionInfo(id="test", mission=MISSION, log_path=log_path)

    async def scenario() -> None:
        with LogReader(log_path) as reader:  # its own messages, as the runtime gives them
            await actor.recover(list(reader.messages(source="dialogue")))
        async with Harness(actor) as harness:
            mind = actor.mind
            assert mind is not None
            assert [said for _, said in mind.conversation.turns] == [
                "The troop net is on 44.175 MHz."]
            assert f"inject:{inject.id}" in mind.self_model.reported
            assert actor.reports == 1  # the twin's own turns go on from there
            assert mind.decide_report(event) is None  # routine, and already reported
            await harness.send(question("And the alternate?", 2))
            await harness.wait_for(TwinUtterance, lambda m: m.turn == 2 and m.final)
            prompt = roles_and_texts(RecordingChat.seen[-1])
            assert ("ai", "The troop net is on 44.175 MHz.") in prompt  # the follow-up's context

    run(scenario())


def test_a_generation_times_the_prompts_reading_apart_from_its_writing() -> None:
    async def written(first_s: float, then_s: float, chunks: int) -> Any:
        await asyncio.sleep(first_s)  # the model reads the prompt
        for n in range(chunks):
            if n:
                await asyncio.sleep(then_s)
            yield f"w{n} "

    async def scenario() -> None:
        generation = dialogue_module._Generation(written(0.3, 0.01, 11))
        async for _ in generation.chunks():
            generation.sentence()
        figures = {m.name: m.value for m in generation.metrics(turn=1)}
        assert 280 <= figures["dialogue_llm_first_token_ms"] < 600
        assert 280 <= figures["dialogue_llm_first_sentence_ms"] < 600
        # ten tokens in about 0.1 s after the first: writing, not reading, sets the rate
        assert 20 < figures["dialogue_llm_tokens_per_s"] <= 100
        replayed = dialogue_module._Generation(written(0, 0, 3), started=time.monotonic() - 1,
                                               replayed=True)
        async for _ in replayed.chunks():
            replayed.sentence()
        assert [m.name for m in replayed.metrics(turn=2)] == ["dialogue_llm_first_sentence_ms"]

    asyncio.run(scenario())
