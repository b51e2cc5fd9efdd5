"""Dialogue: what the twin says, and why — a LangChain chain over the mind's decision.

In: the operator's final ``Transcript`` (answer / recommend / clarify ...), ``MissionEvent``s the
operator should know (a proactive report), and what the mind follows: ``OperatorState``,
``SpeechStarted``/``SpeechEnded`` (is the operator talking?), ``TwinUtterance`` and ``SpeechCut``
(what the operator actually heard of the twin), ``Speech`` (the twin's voice is out: only its
turn is read). Out: a ``TwinDecision`` (intent, style, hedge, confidence, reasons, evidence ids)
and then the reply, sentence by sentence, as ``TwinUtterance``s with the same ``turn``.

The decision is made first, without any LLM (``twin.mind``). Acknowledgements, clarifications and
declines are spoken from the decision alone. Answers, recommendations and reports go through the
chain ``ChatPromptTemplate | chat model | StrOutputParser`` (``actors.chat``), streamed and cut
into sentences as they complete. Every sentence is checked against the evidence before it is
published: a sentence that states a number, grid or time the evidence does not hold ends the
model's reply there, and the grounded fallback built from the decision is spoken instead. A model
that fails or exceeds its time limit also gives way to the fallback: the twin is never silent and
never invents a value.

With ``llm_role: extend`` the model starts once the grounded sentence's ``Speech`` is out (at
most ``speech_wait_s`` later): on a small machine its prompt would otherwise slow the voice the
operator is waiting for.

Proactive reports wait while the operator is speaking: a flash report goes out when their turn
ends, the others after the answer to that turn (or ``report_wait_s`` later if no transcript
comes).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from actors.chat import ChatSettings, chat_model, split_sentences
from twin.actor import Actor, ActorFailed
from twin.messages import (
    Message,
    Metric,
    MissionEvent,
    OperatorState,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinUtterance,
)
from twin.mind import Decision, Mind


class DialogueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chat: ChatSettings = Field(default_factory=ChatSettings)
    knowledge_model: str = Field("all-minilm-l6-v2", description="sentence embeddings")
    operator: str | None = Field(None, description="roster id of the operator (default: first)")
    confidence_threshold: float = Field(0.45, gt=0, lt=1)
    max_sentences: int = Field(3, ge=1, le=8)
    llm_role: Literal["extend", "phrase"] = Field(
        "extend", description="extend: the policy's grounded sentence first, then what the "
        "model adds that passes the checks (small local models); phrase: the model phrases the "
        "whole reply, checked sentence by sentence (bigger models)")
    reports: bool = Field(True, description="report mission events proactively")
    model_reports: bool = Field(False, description="let the model add to reports (they are "
                                "spoken from the event itself; a small model only delays the "
                                "next answer)")
    speech_wait_s: float = Field(1.0, ge=0, le=10, description="extend: the model starts once "
                                 "the grounded sentence's speech is out (at most this long "
                                 "after it), so it does not slow the voice on a small machine")
    report_wait_s: float = Field(1.5, ge=0, le=10, description="reports held back while the "
                                 "operator spoke wait after their turn for the answer to go "
                                 "first, at most this long if no transcript comes (flash "
                                 "reports do not wait)")


# Values a sentence may state only if the evidence holds them: numbers, times, grids.
_VALUE = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[a-z][a-z'-]{3,}")  # content-ish words: four letters or more
MIN_OVERLAP = 0.6
# Operator turns are numbered by the speech recogniser from 1; the twin's own turns (its
# proactive reports) from here, so the two never collide.
REPORT_TURNS = 1_000_000


def ungrounded(sentence: str, grounds: str, values: str | None = None, *,
               already: Sequence[str] = ()) -> str | None:
    """Why ``sentence`` is not grounded, or None: it states a value that ``values`` (default:
    ``grounds``) does not hold, most of its words are not those of ``grounds`` (a small model
    drifting off into invented prose), or it only repeats what was already said."""
    allowed = set(_VALUE.findall(grounds if values is None else values))
    invented = [v for v in _VALUE.findall(sentence) if v not in allowed]
    if invented:
        return f"states {', '.join(invented)}, which the grounded reply does not"
    words = _WORD.findall(sentence.lower())
    known = set(_WORD.findall(grounds.lower()))
    if words and sum(word in known for word in words) / len(words) < MIN_OVERLAP:
        return "mostly words the evidence does not use"
    said = {w for line in already for w in _WORD.findall(line.lower())}
    if words and all(word in said for word in words):
        return "repeats what was already said"
    return None


class Dialogue(Actor):
    """The twin's mind and mouth: decisions, then replies sentence by sentence."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (
        Transcript, MissionEvent, OperatorState, SpeechStarted, SpeechEnded, SpeechCut,
        TwinUtterance, Speech)
    Settings: ClassVar[type[BaseModel]] = DialogueSettings

    @classmethod
    def required_models(cls, settings: BaseModel) -> tuple[str, ...]:
        from twin.models import REGISTRY

        assert isinstance(settings, DialogueSettings)
        names = [settings.knowledge_model]
        if settings.chat.backend == "llamacpp":
            names.append(settings.chat.model)
        return tuple(name for name in names if name in REGISTRY)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.settings
        assert isinstance(settings, DialogueSettings)
        self.config = settings
        self.mind: Mind | None = None
        self.chain: Any = None
        self.reports = 0  # the twin's own turns (proactive reports): REPORT_TURNS + n
        self._deferred: list[Decision] = []
        self._release: asyncio.Task[None] | None = None  # deferred reports after a pause
        self._voiced: dict[int, asyncio.Event] = {}  # turn -> its first Speech is out
        self._replying: asyncio.Task[None] | None = None
        # (decision, turn, monotonic time its trigger arrived)
        self._queue: asyncio.Queue[tuple[Decision, int, float]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def recover(self, history: Sequence[Message]) -> None:
        turns = [m.turn - REPORT_TURNS for m in history
                 if m.turn is not None and m.turn > REPORT_TURNS]
        self.reports = max(turns, default=0)

    async def on_start(self) -> None:
        mission = self.session.mission
        if mission is None:
            raise ActorFailed("the dialogue needs a mission (its knowledge and roster)")
        try:
            knowledge = await asyncio.to_thread(self._load_knowledge)
            self.chain = await asyncio.to_thread(self._build_chain)
        except Exception as error:  # missing model or library: say which and how to fix
            raise ActorFailed(f"{type(error).__name__}: {error}") from None
        self.mind = Mind(mission, knowledge, operator=self.config.operator,
                         confidence_threshold=self.config.confidence_threshold)
        await self._warm_up()
        self._worker = asyncio.create_task(self._speak_in_order())

    def _load_knowledge(self) -> Any:
        from actors.knowledge import Knowledge

        mission = self.session.mission
        assert mission is not None
        knowledge = Knowledge(self.config.knowledge_model)
        knowledge.add_documents(mission.knowledge)
        return knowledge

    def _build_chain(self) -> Any:
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate

        prompt = ChatPromptTemplate.from_messages([("placeholder", "{messages}")])
        return prompt | chat_model(self.config.chat) | StrOutputParser()

    async def _warm_up(self) -> None:
        with contextlib.suppress(Exception):  # a cold model only costs the first reply time
            await asyncio.wait_for(self._generate([("user", "Say ready.")]).__anext__(), 30)

    async def on_stop(self) -> None:
        for task in (self._worker, self._replying, self._release):
            if task is not None:
                task.cancel()

    def on_health(self) -> dict[str, Any]:
        return {"reports": self.reports, "deferred": len(self._deferred)}

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: Message) -> None:
        if isinstance(message, Speech):
            if message.turn is not None:
                self._speech_out(message.turn).set()
            return
        mind = self.mind
        assert mind is not None
        mind.observe(message)
        arrived = time.monotonic()
        if isinstance(message, Transcript) and message.final:
            turn = message.turn if message.turn is not None else self._next_turn()
            answer = mind.decide_reply(message)
            await self.publish(Metric(name="dialogue_decision_ms", unit="ms", turn=turn,
                                      value=round((time.monotonic() - arrived) * 1000, 1)))
            await self._queue.put((answer, turn, arrived))
            await self._release_deferred(arrived)  # the answer first, then what was held
        elif isinstance(message, MissionEvent) and self.config.reports:
            decision = mind.decide_report(message)
            if decision is None:
                return
            if decision.defer:
                self._deferred.append(decision)
            else:
                await self._queue.put((decision, self._next_turn(), arrived))
        elif isinstance(message, SpeechEnded) and self._deferred:
            # A flash report goes out at once; the rest waits for the answer to the operator's
            # turn (its final transcript follows SpeechEnded by a few hundred ms), or for
            # report_wait_s if none comes (the turn was noise).
            flash = [d for d in self._deferred if d.expression == "urgent"]
            self._deferred = [d for d in self._deferred if d.expression != "urgent"]
            for decision in flash:
                await self._queue.put((decision, self._next_turn(), arrived))
            if self._deferred and self._release is None:
                self._release = asyncio.create_task(self._release_after(arrived))

    async def _release_after(self, arrived: float) -> None:
        await asyncio.sleep(self.config.report_wait_s)
        self._release = None
        await self._release_deferred(arrived)

    async def _release_deferred(self, arrived: float) -> None:
        """Queue the reports held back while the operator spoke (the queue keeps the order)."""
        if self._release is not None and self._release is not asyncio.current_task():
            self._release.cancel()
            self._release = None
        held, self._deferred = self._deferred, []
        for decision in held:
            await self._queue.put((decision, self._next_turn(), arrived))

    def _speech_out(self, turn: int) -> asyncio.Event:
        """Set when the first ``Speech`` of ``turn`` has been published."""
        if turn not in self._voiced:
            self._voiced[turn] = asyncio.Event()
            while len(self._voiced) > 64:
                del self._voiced[next(iter(self._voiced))]
        return self._voiced[turn]

    def _next_turn(self) -> int:
        self.reports += 1
        return REPORT_TURNS + self.reports

    async def _speak_in_order(self) -> None:
        while True:
            decision, turn, arrived = await self._queue.get()
            self._replying = asyncio.create_task(self._reply(decision, turn, arrived))
            try:
                await self._replying
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self.report_error(error)

    # ------------------------------------------------------------------ replying

    async def _reply(self, decision: Decision, turn: int, arrived: float) -> None:
        reply = _Reply(self, decision, turn, arrived)
        await self.publish(msgspec.structs.replace(decision.message(), turn=turn))
        plain = decision.intent in ("acknowledge", "clarify", "decline") or (
            decision.trigger == "report" and not self.config.model_reports)
        if plain or decision.hedge or not decision.evidence or self.chain is None:
            await reply.say(decision.fallback, final=True, source="policy")
            return
        if self.config.llm_role == "extend":
            await reply.say(decision.fallback, final=False, source="policy")
            # The voice first: on two cores the model's prompt would slow the synthesis of the
            # grounded sentence, which the operator is waiting for; what it adds comes after.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.speech_wait_s):
                    await self._speech_out(turn).wait()
        assert self.mind is not None
        # The model may use the evidence's words, but state only the values the policy chose
        # to say (a small model readily pairs the right number with the wrong thing).
        words = " ".join([decision.question, decision.fallback,
                          *(passage.text for passage, _ in decision.evidence)])
        values = f"{decision.question} {decision.fallback}"
        budget = self.config.max_sentences - reply.index
        generation = _Generation(self._generate(self.mind.prompt(decision)))
        try:
            async with asyncio.timeout(self.config.chat.timeout_s):
                async for sentence in split_sentences(generation.chunks()):
                    generation.sentence()
                    problem = ungrounded(sentence, words, values, already=reply.spoken)
                    if problem:
                        reply.rejected.append(f"{problem}: {sentence[:80]}")
                        break  # the model left the evidence: stop it here
                    await reply.say(sentence, final=False, source="llm")
                    budget -= 1
                    if budget <= 0:
                        break
        except Exception as error:  # a timeout or a failing model: the grounded reply stands
            await self.report_error(error)
        for metric in generation.metrics(turn):
            await self.publish(metric)
        if reply.index == 0:  # the model said nothing usable: the grounded reply
            await reply.say(decision.fallback, final=True, source="fallback")
        else:
            await reply.close()

    async def _generate(self, messages: list[tuple[str, str]]) -> AsyncIterator[str]:
        async for chunk in self.chain.astream({"messages": messages}):
            yield str(chunk)



class _Generation:
    """Times one model generation: to its first sentence, and its tokens (chunks) per second."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self._chunks = chunks
        self.started = time.monotonic()
        self.count = 0
        self.first_sentence: float | None = None
        self.ended: float | None = None

    async def chunks(self) -> AsyncIterator[str]:
        async for chunk in self._chunks:
            self.count += 1
            yield chunk
        self.ended = time.monotonic()

    def sentence(self) -> None:
        if self.first_sentence is None:
            self.first_sentence = time.monotonic()

    def metrics(self, turn: int) -> list[Metric]:
        figures = []
        if self.first_sentence is not None:
            figures.append(Metric(name="dialogue_llm_first_sentence_ms", unit="ms", turn=turn,
                                  value=round((self.first_sentence - self.started) * 1000, 1)))
        end = self.ended or time.monotonic()
        if self.count and end > self.started:
            figures.append(Metric(name="dialogue_llm_tokens_per_s", unit="tok/s", turn=turn,
                                  value=round(self.count / (end - self.started), 1)))
        return figures


class _Reply:
    """One reply's sentences as they are published, numbered; its first sentence's delay is
    counted from the arrival of what triggered it (the final transcript, the mission event)."""

    def __init__(self, actor: Dialogue, decision: Decision, turn: int, arrived: float) -> None:
        self.actor, self.decision, self.turn = actor, decision, turn
        self.started = arrived
        self.index = 0
        self.spoken: list[str] = []
        self.rejected: list[str] = []  # model sentences held back, and why

    async def close(self) -> None:
        """End the reply: an empty final utterance (LipSync says nothing for it)."""
        await self.say("", final=True, source="end")

    async def say(self, text: str, *, final: bool, source: str) -> None:
        """Publish one sentence (an empty final one just closes the reply)."""
        decision = self.decision
        if text:
            self.spoken.append(text)
        await self.actor.publish(TwinUtterance(
            text=text, index=self.index, final=final, intent=decision.intent,
            expression=decision.expression, confidence=round(decision.confidence, 3),
            turn=self.turn))
        if self.index == 0:
            await self.actor.publish(Metric(
                name="dialogue_first_sentence_ms", unit="ms", turn=self.turn,
                value=round((time.monotonic() - self.started) * 1000, 1),
                labels={"source": source, "intent": decision.intent}))
        if final and self.rejected:
            await self.actor.publish(Metric(
                name="dialogue_sentences_rejected", value=len(self.rejected), turn=self.turn,
                labels={"why": " | ".join(self.rejected)[:300]}))
        self.index += 1
