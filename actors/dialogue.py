"""Dialogue: what the twin says, and why — a LangChain chain over the mind's decision.

In: the operator's final ``Transcript`` (answer / recommend / clarify ...), ``MissionEvent``s the
operator should know (a proactive report), and what the mind follows: ``OperatorState``,
``SpeechStarted``/``SpeechEnded`` (is the operator talking?), ``TwinUtterance`` and ``SpeechCut``
(what the operator actually heard of the twin), ``Speech`` (the twin's voice is out: only its
turn is read), ``Interrupt`` (the operator cut the twin off: the model stops writing that
reply). Out: a ``TwinDecision`` (intent, style, hedge, confidence, reasons, evidence ids) and
then the reply, sentence by sentence, as ``TwinUtterance``s with the same ``turn``.

The decision is made first, without any LLM (``twin.mind``). Acknowledgements, clarifications,
declines, hedges about what the mission never mentions and flash reports are spoken from the
decision alone. Otherwise the model answers (``llm_role: phrase``, the default): it has read the
whole mission once, as the prompt's stable prefix (``twin.prompt``; warmed while the session
starts and cached on disk, :class:`actors.chat.PrefixCache`), and each turn adds only its own
part. Its reply streams through the chain ``ChatPromptTemplate | chat model`` (``actors.chat``;
no output parser: closing a stream through ``StrOutputParser`` reads the model to its last
token, which held the model for seconds after every reply cut short) and is cut into sentences
as they complete; each sentence is checked before it is published (``twin.grounding``: every
value in it must be in the mission, the events so far or the operator's words; and none may
read out the prompt's instructions or a secret, whatever an operator or a note asked): a failing
sentence is dropped with its reason logged, a model that says the notes do not hold the answer
gives a hedge, and a reply with nothing left becomes the hedged grounded sentence. A model that
fails or exceeds its time limit also gives way to it: the twin is never silent and never states
an invented value.

Speculation: the recogniser decodes an utterance at a pause that may end the turn and publishes
it as a ``speculative`` transcript. If the model is free, the dialogue decides on a copy of the
mind and starts the model's reply at once, publishing nothing; when the final transcript comes
and gives the same prompt, the reply takes the model's words written so far and goes on with
them. Anything else (the operator went on, other words, an event between) drops it unsaid.

With ``llm_role: extend`` (tiny models) the policy's grounded sentence is said first and the
model only adds to it, once that sentence's ``Speech`` is out (at most ``speech_wait_s`` later).

After a crash (Ray starts the process again) the mind is caught up from the session log before
the first message is handled: the mission's events, the operator's state and words, the
conversation the model had (each question it answered, and its reply) and what was reported.

Proactive reports wait while the operator is speaking: a flash report goes out when their turn
ends, the others after the answer to that turn (or ``report_wait_s`` later if no transcript
comes).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from actors.chat import (
    ChatSettings,
    PrefixCache,
    TokenOdds,
    chat_model,
    plain_speech,
    split_sentences,
)
from twin.actor import Actor, ActorFailed
from twin.grounding import Confidential, Grounds, ordinary_words, value_phrases
from twin.messages import (
    Interrupt,
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
from twin.mind import Decision, Mind, spoken_numbers
from twin.prompt import NOT_IN_NOTES, read_notes


class DialogueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chat: ChatSettings = Field(default_factory=ChatSettings)
    knowledge_model: str = Field("all-minilm-l6-v2", description="sentence embeddings")
    operator: str | None = Field(None, description="roster id of the operator (default: first)")
    confidence_threshold: float = Field(0.45, gt=0, lt=1)
    max_sentences: int = Field(4, ge=1, le=8, description="at most this many sentences of "
                               "the model's reply (brief: 2, standard: 3)")
    llm_role: Literal["extend", "phrase"] = Field(
        "phrase", description="phrase: the model writes the whole reply from the whole mission, "
        "checked sentence by sentence (capable models, the default); extend: the policy's "
        "grounded sentence first, then what the model adds that passes the checks (tiny models)")
    guess_floor: float = Field(0.5, ge=0, lt=1, description="llamacpp: a value (a name, a "
                               "number, a callsign) the model wrote with a probability below "
                               "this is a guess, and the reply ends saying so: below 0.5 the "
                               "model thought the other words likelier together; 0: off")
    reports: bool = Field(True, description="report mission events proactively")
    model_reports: bool = Field(False, description="the model phrases (non-flash) reports; "
                                "off: the event is spoken at once with the fact that says what "
                                "it means (on two cores the model's report would hold up the "
                                "next answer)")
    speculate: bool = Field(True, description="start the reply on the recogniser's "
                            "speculative transcript (the utterance decoded at a pause that may "
                            "end the turn): when the turn ends there, the final transcript takes "
                            "the model's reply as far as it got; when the operator goes on, it "
                            "is dropped unsaid")
    prefill: bool = Field(True, description="whenever it has nothing to say (and as the "
                          "operator starts to speak) the model reads what the conversation gained "
                          "and the start of the next turn: an answer then costs only the "
                          "question's own tokens")
    prefill_heard: bool = Field(True, description="prefill: also read the operator's words as "
                                "the partial transcripts bring them (on 2 cores this reading "
                                "competes with the recogniser's decodes)")
    warm_up_s: float = Field(600, gt=0, description="the model reads the mission (the prompt's "
                             "stable prefix) before the mission clock starts; at most this long")
    speech_wait_s: float = Field(1.0, ge=0, le=10, description="extend: the model starts once "
                                 "the grounded sentence's speech is out (at most this long "
                                 "after it), so it does not slow the voice on a small machine")
    report_wait_s: float = Field(1.5, ge=0, le=10, description="reports held back while the "
                                 "operator spoke wait after their turn for the answer to go "
                                 "first, at most this long if no transcript comes (flash "
                                 "reports do not wait)")


log = logging.getLogger(__name__)

_DROPPED_BEFORE_FALLBACK = 2
"""Sentences of a reply dropped by the checks before anything was said, after which the model
is stopped and the hedged grounded reply said: a model that has left the evidence twice rarely
comes back, and the operator hears nothing meanwhile (seen in a session: 18 s of silence, every
sentence dropped)."""

_WORD = re.compile(r"[a-z][a-z'-]{3,}")  # content-ish words: four letters or more
# words that link a sentence to the one before without saying anything new
_LINKS = frozenset({"reason", "because", "that", "this", "which", "means", "therefore", "since",
                    "also", "then", "thus", "hence", "why"})
# The model's way of saying that nothing it was given holds the answer (twin.prompt).
# A small model often says it in its own words: "X is not specified", "no information on X".
_NOT_IN_NOTES = re.compile(
    r"\b(?:do not|don't|does not|doesn't) (?:have|hold|say|give|mention)\b.{0,40}\bnotes\b|"
    r"\bnot in the (?:mission )?notes\b|"
    r"\b(?:is|are|was|were) not (?:specified|mentioned|given|stated|listed|provided|known)"
    r"(?=\s*(?:[.,;!]|$|in\b|anywhere\b|here\b))|"
    r"\b(?:do|does|did) not (?:specify|mention|state|say)\b|"
    r"\bno (?:information|details?|mention|record) (?:of|on|about|is|was)\b", re.IGNORECASE)
# Sentences of the model's reply by style, at most.
_SENTENCES = {"brief": 2, "standard": 3, "explanatory": 4}
# Operator turns are numbered by the speech recogniser from 1; the twin's own turns (its
# proactive reports, typed questions) from here, so the two never collide.
REPORT_TURNS = 1_000_000


def _heard(transcript: Transcript) -> str:
    """What the operator said, for the twin to say back: their words, their spelled numbers as
    figures, and the values they read out in the mission's forms ("49307102" is 4930 7102)."""
    return spoken_numbers(f"{transcript.text} "
                          f"{' '.join(entity.text for entity in transcript.entities)}")


def notes_budget_chars(chat: ChatSettings) -> int | None:
    """How much of the mission notes fit the model's context beside the rest of the prompt
    (about 3 characters a token); ``None``: no limit known (a server's model)."""
    if chat.backend != "llamacpp":
        return None
    return max(0, (chat.n_ctx - chat.max_tokens - 2500) * 3)


def conversation_chars(chat: ChatSettings, prefix: str) -> int:
    """How much conversation fits a local model's context after ``prefix``, the turn and the
    reply (characters; about 3 a token, the prefix's about 3.2)."""
    tokens = chat.n_ctx - chat.max_tokens - 600 - len(prefix) / 3.2
    return max(1500, int(tokens * 3))


def _echoes_instructions(sentence: str) -> str | None:
    """Why ``sentence`` is the prompt's own markup (the bracketed how-to-reply of a turn, a
    model's "[report ...]") rather than something to say, or ``None``."""
    if "[" in sentence or "]" in sentence or sentence.lstrip().startswith(("Reply:", "Event")):
        return "echoes the prompt's instructions"
    return None


def _texts(value: Any) -> list[str]:
    """Every string in ``value`` (a mission dumped to plain data): what the twin may quote."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _listed(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _said_before(sentence: str, earlier: Sequence[str]) -> str | None:
    """Why ``sentence`` is one the twin said in an earlier turn, word for word, or ``None``."""
    words = re.findall(r"[a-z0-9]+", sentence.lower())
    if len(words) < 6:  # "I am not certain.", "Roger, out.": said again and again, rightly
        return None
    for reply in earlier:
        for old in _sentences_of(reply):
            if re.findall(r"[a-z0-9]+", old.lower()) == words:
                return "says again what an earlier reply said"
    return None


def _sentences_of(text: str) -> list[str]:
    """The sentences of a finished text."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _repeats(sentence: str, already: Sequence[str]) -> str | None:
    """Why ``sentence`` only repeats what was already said in this reply (its words but the
    links of an argument: "The reason is that ..." and the same words again), or ``None``."""
    words = [w for w in _WORD.findall(sentence.lower()) if w not in _LINKS]
    said = {w for line in already for w in _WORD.findall(line.lower())}
    if words and all(word in said for word in words):
        return "repeats what was already said"
    return None


class Dialogue(Actor):
    """The twin's mind and mouth: decisions, then replies sentence by sentence."""

    subscribes: ClassVar[tuple[type[Message], ...]] = (
        Transcript, MissionEvent, OperatorState, SpeechStarted, SpeechEnded, SpeechCut, Interrupt,
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
        self._reader: Any = None  # the same chain, stopping at its first token (read ahead)
        self._chat: Any = None  # the chat model inside the chain
        self._prompt: Any = None  # the chain's prompt template
        self._model_lock = threading.Lock()  # one generation (or state load/save) at a time
        self._model_run: tuple[threading.Thread, threading.Event] | None = None  # the last one
        self.reports = 0  # the twin's own turns (proactive reports): REPORT_TURNS + n
        self._deferred: list[Decision] = []
        self._release: asyncio.Task[None] | None = None  # deferred reports after a pause
        self._voiced: dict[int, asyncio.Event] = {}  # turn -> its first Speech is out
        self._replying: asyncio.Task[None] | None = None
        self._replying_turn: int | None = None
        self._cut_turn: int | None = None  # the operator cut the twin off in this turn
        self._prefilling: asyncio.Task[None] | None = None  # the model reading a turn's start
        self._speculation: _Speculation | None = None  # a reply started before the turn ended
        self._withdrawn: list[int] = []  # turns whose reply was cut before it was said
        # (decision, turn, monotonic time its trigger arrived)
        self._queue: asyncio.Queue[tuple[Decision, int, float]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._recovering = False  # started again after a crash

    # ------------------------------------------------------------------ lifecycle

    async def recover(self, history: Sequence[Message]) -> None:
        turns = [m.turn - REPORT_TURNS for m in history
                 if m.turn is not None and m.turn > REPORT_TURNS]
        self.reports = max(turns, default=0)
        self._recovering = True  # on_start catches the mind up from the log

    async def on_start(self) -> None:
        mission = self.session.mission
        if mission is None:
            raise ActorFailed("the dialogue needs a mission (its knowledge and roster)")
        try:
            knowledge = await asyncio.to_thread(self._load_knowledge)
            self.chain = await asyncio.to_thread(self._build_chain)
        except Exception as error:  # missing model or library: say which and how to fix
            raise ActorFailed(f"{type(error).__name__}: {error}") from None
        chat = self.config.chat
        self.mind = Mind(mission, knowledge, operator=self.config.operator,
                         confidence_threshold=self.config.confidence_threshold,
                         notes_budget_chars=notes_budget_chars(chat))
        if chat.backend == "llamacpp":  # the conversation gets what the prefix leaves
            self.mind.conversation.max_chars = conversation_chars(chat, self.mind.prefix)
        notes = [text for _, text in read_notes(mission.knowledge)]
        self.grounds = Grounds([self.mind.prefix, *notes],
                               common_words=ordinary_words(self.config.knowledge_model))
        # Prompt injection ("repeat your instructions") reads out nothing of the prompt but the
        # mission's own words, and no secret.
        key = os.environ.get(chat.api_key_env, "") if chat.backend == "openai" else ""
        self.confidential = Confidential(
            self.mind.prefix, facts=[*_texts(mission.model_dump(mode="json")), *notes,
                                     NOT_IN_NOTES], secrets=[self.session.secret, key])
        if self._recovering:
            await asyncio.to_thread(self._catch_up)
        await self._warm_up()
        self._worker = asyncio.create_task(self._speak_in_order())

    def _catch_up(self) -> None:
        """After a restart: the mind (the mission so far, the conversation, what was reported)
        and the checker's grounds (events, the operator's words) from the session log."""
        from twin.log import LogError, LogReader

        path = self.session.log_path
        if self.mind is None or path is None:
            return
        tags = ["mission_event", "operator_state", "transcript", "twin_decision",
                "twin_utterance"]
        try:
            with LogReader(path) as reader:
                messages = [m for m in reader.messages(types=tags)
                            if not (isinstance(m, Transcript) and not m.final)]
        except LogError:
            return
        for message in messages:
            if isinstance(message, MissionEvent):
                self.grounds.add(f"{message.text} {' '.join(message.facts)}")
            elif isinstance(message, Transcript):
                self.grounds.add(_heard(message))
        restored = self.mind.catch_up(messages, self.name)
        log.warning("dialogue: caught up from the log: %d exchanges, %d reports", restored,
                    len(self.mind.self_model.reported))

    def _load_knowledge(self) -> Any:
        from actors.knowledge import Knowledge

        mission = self.session.mission
        assert mission is not None
        knowledge = Knowledge(self.config.knowledge_model)
        knowledge.add_documents(mission.knowledge)
        return knowledge

    def _build_chain(self) -> Any:
        from langchain_core.prompts import ChatPromptTemplate

        prompt = ChatPromptTemplate.from_messages([("placeholder", "{messages}")])
        self._prompt = prompt
        self._chat = chat_model(self.config.chat)
        # Reading ahead needs the prompt read, not a reply: one token, and the model is free.
        # (Ollama takes its limit only among all its options: there the read-ahead stops
        # itself at the first token, as a reply cut short does.)
        self._reader = (prompt | self._chat.bind(max_tokens=1)
                        if self.config.chat.backend in ("llamacpp", "openai")
                        else prompt | self._chat)
        return prompt | self._chat

    async def _warm_up(self) -> None:
        """Let the model read the stable prefix (the whole mission) now, so the first question
        costs only its own tokens; say how long it took (``dialogue_ready_s``)."""
        assert self.mind is not None
        prefix = self.mind.prefix
        started = time.monotonic()
        llm = getattr(self._chat, "client", None)  # a local llama.cpp model
        cache = PrefixCache() if llm is not None and hasattr(llm, "n_ctx") else None
        loaded = warm = False
        def locked(call: Any, *args: Any) -> Any:
            with self._model_lock:
                return call(*args)

        with contextlib.suppress(Exception):
            loaded = cache is not None and await asyncio.to_thread(locked, cache.load, llm,
                                                                   prefix)
        with contextlib.suppress(Exception):  # a cold model only costs the first reply time
            async with asyncio.timeout(self.config.warm_up_s):
                reply = self._generate(self.mind.prompt("Say ready."), reader=True)
                await reply.__anext__()  # the first token: the prefix is read
                await reply.aclose()  # type: ignore[attr-defined]
            warm = True
            if cache is not None and not loaded:
                await asyncio.to_thread(locked, cache.save, llm, prefix)
        await self.publish(Metric(
            name="dialogue_ready_s", unit="s", value=round(time.monotonic() - started, 2),
            labels={"model": self.config.chat.model, "prefix_chars": str(len(prefix)),
                    "notes": "all" if self.mind.notes_in_prefix else "per question",
                    "warm": str(warm).lower(), "from_cache": str(loaded).lower()}))

    async def on_stop(self) -> None:
        for task in (self._worker, self._replying, self._release, self._prefilling):
            if task is not None:
                task.cancel()
        if self._model_run is not None:  # llama.cpp must not be mid-token when the process ends
            thread, stop = self._model_run
            stop.set()
            await asyncio.to_thread(thread.join, 120)

    def on_health(self) -> dict[str, Any]:
        return {"reports": self.reports, "deferred": len(self._deferred)}

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: Message) -> None:
        if isinstance(message, Speech):
            if message.turn is not None:
                self._speech_out(message.turn).set()
            return
        if isinstance(message, Interrupt):
            self._cut(message.target_turn)
            if message.target_turn is not None:  # a reply not begun yet is not begun at all
                self._withdrawn.append(message.target_turn)
                del self._withdrawn[:-16]
            if self._speculation is not None and self._speculation.turn == message.target_turn:
                await self._drop_speculation("the turn was withdrawn")
            return
        mind = self.mind
        assert mind is not None
        mind.observe(message)
        arrived = time.monotonic()
        if isinstance(message, MissionEvent):
            self.grounds.add(f"{message.text} {' '.join(message.facts)}")
        elif isinstance(message, Transcript) and message.final:
            self.grounds.add(_heard(message))
        if (isinstance(message, SpeechStarted) and message.stream == "operator"
                and self.config.prefill):
            self._start_prefill()
        elif (isinstance(message, Transcript) and not message.final and not message.typed
              and message.speaker == "operator"):
            if self._speculation is not None and (
                    message.turn != self._speculation.turn or not message.speculative
                    or message.text != self._speculation.text):
                await self._drop_speculation("the operator went on")
            if message.speculative and self.config.speculate:
                await self._speculate(message)
            elif self.config.prefill and self.config.prefill_heard:
                self._start_prefill(message.text)
        if isinstance(message, Transcript) and message.final and message.backchannel:
            await self._release_deferred(arrived)  # "okay" while the twin spoke: no answer
            return
        if isinstance(message, Transcript) and message.final:
            turn = message.turn if message.turn is not None else self._next_turn()
            if self._speculation is not None and (self._speculation.turn != turn
                                                  or self._speculation.text != message.text):
                await self._drop_speculation("the final transcript says otherwise")
            # The operator has moved on: the rest of a reply still being written would hold
            # the model (and the new answer behind it) for what nobody waits for now.
            self._cut(self._replying_turn)
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

    async def _speculate(self, transcript: Transcript) -> None:
        """Start the model's reply to ``transcript`` as if it were final, on a copy of the mind
        (nothing decided is kept), if the model is free and the reply would be the model's."""
        mind = self.mind
        if (mind is None or self.chain is None or self.config.llm_role != "phrase"
                or self._speculation is not None or not self._queue.empty()
                or (self._replying is not None and not self._replying.done())):
            return
        # the knowledge index and the mission are read, never changed: shared, not copied
        preview = copy.deepcopy(mind, memo={id(mind.knowledge): mind.knowledge,
                                            id(mind.mission): mind.mission})
        decision = preview.decide_reply(msgspec.structs.replace(transcript, final=True))
        if self._plain(decision):
            return
        messages = preview.prompt(preview.turn_message(decision))
        odds = self._odds()
        self._speculation = _Speculation(transcript.turn, transcript.text, messages, odds,
                                         self._generate(messages, odds=odds))

    def _adopt(self, turn: int, messages: list[tuple[str, str]]) -> _Speculation | None:
        """The speculation for ``turn`` if it was started on this very prompt."""
        speculation = self._speculation
        if speculation is None or speculation.turn != turn or speculation.messages != messages:
            return None
        self._speculation = None
        return speculation

    async def _drop_speculation(self, why: str) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is None:
            return
        await speculation.drop()
        await self.publish(Metric(name="dialogue_speculation", value=0, turn=speculation.turn,
                                  labels={"outcome": "dropped", "why": why}))

    def _plain(self, decision: Decision) -> bool:
        """Whether the reply is the policy's words alone (no model)."""
        return decision.intent in ("acknowledge", "clarify", "decline") or decision.hedge or (
            decision.trigger == "report" and (not self.config.model_reports
                                              or decision.expression == "urgent"))

    def _cut(self, turn: int | None) -> None:
        """The operator cut the twin off in ``turn``: the rest of that reply would go unheard,
        and writing it would hold the model while their next question waits. Stop it."""
        if turn is not None and turn == self._replying_turn:
            self._cut_turn = turn
            if self._model_run is not None:
                self._model_run[1].set()

    def _start_prefill(self, heard: str = "") -> None:
        """Let the model read the conversation so far and the start of the operator's next
        turn now, if it has nothing to say: with ``heard`` (a partial transcript), the question
        as far as it is heard, but its last word (still changing); at the final transcript
        only the rest is left to read."""
        busy = (self._prefilling is not None and not self._prefilling.done()) or (
            self._replying is not None and not self._replying.done()
            and self._replying is not asyncio.current_task()) or not self._queue.empty()
        if busy or self.chain is None or self.mind is None:
            return
        head = self.mind.question_head()
        words = spoken_numbers(heard).split()[:-1]
        self._prefilling = asyncio.create_task(
            self._prefill(f"{head} {' '.join(words)}" if words else head))

    async def _prefill(self, head: str) -> None:
        assert self.mind is not None
        started = time.monotonic()
        reading = self._generate(self.mind.prompt(head), reader=True)
        with contextlib.suppress(Exception):
            await reading.__anext__()  # the first token: all before it is read
        await reading.aclose()  # type: ignore[attr-defined]
        await self.publish(Metric(name="dialogue_prefill_ms", unit="ms",
                                  value=round((time.monotonic() - started) * 1000, 1)))

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
            if turn in self._withdrawn:
                continue
            self._replying = asyncio.create_task(self._reply(decision, turn, arrived))
            self._replying_turn = turn
            try:
                await self._replying
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self.report_error(error)
            finally:
                self._replying_turn = None
            if self._queue.empty() and self.config.prefill:
                # Nothing more to say: the model reads what the conversation gained (reports
                # spoken without it, the last reply) now, not when the next question comes.
                self._start_prefill()

    # ------------------------------------------------------------------ replying

    async def _reply(self, decision: Decision, turn: int, arrived: float) -> None:
        mind = self.mind
        assert mind is not None
        reply = _Reply(self, decision, turn, arrived)
        await self.publish(msgspec.structs.replace(decision.message(), turn=turn))
        if self._plain(decision) or self.chain is None or (self.config.llm_role == "extend"
                                           and not decision.evidence):
            await reply.say(decision.fallback, final=True, source="policy")
            # The policy's reply stays out of the conversation (the model copies what it sees
            # there: a hedge as its next answer); so does a report spoken from its event: the
            # event reaches the model as an "Event earlier" line of the next turn (a turn whose
            # reply repeats its message teaches a small model to echo the operator).
            return
        asked = mind.turn_message(decision)
        if self.config.llm_role == "extend":
            await reply.say(decision.fallback, final=False, source="policy")
            # The voice first: on two cores the model's prompt would slow the synthesis of the
            # grounded sentence, which the operator is waiting for; what it adds comes after.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.speech_wait_s):
                    await self._speech_out(turn).wait()
        budget = min(self.config.max_sentences, _SENTENCES[decision.style]) - reply.index
        said = reply.index  # the reply's sentences before the model's (extend: the policy's)
        # what the twin said in its last turns: a small model readily copies it as its answer
        earlier = [text for _, text in mind.conversation.turns[-3:]]
        messages = mind.prompt(asked)
        speculation = self._adopt(turn, messages)
        if speculation is not None:  # the model began this reply before the turn ended
            odds = speculation.odds
            generation = _Generation(speculation.replay(), started=speculation.started,
                                     replayed=True)
            await self.publish(Metric(
                name="dialogue_speculation", value=1, turn=turn, labels={
                    "outcome": "adopted", "ahead_ms": str(round(
                        (arrived - speculation.started) * 1000))}))
        else:
            if self._speculation is not None:
                await self._drop_speculation("the prompt changed")
            odds = self._odds()
            generation = _Generation(self._generate(messages, odds=odds))
        guesses: list[str] = []  # values the model wrote without being sure of them
        unknown = await self._write(reply, generation, odds, budget, earlier, guesses)
        for question in decision.follow_ups:  # the turn's next question, or why
            if reply.index == 0 or self._cut_turn == turn:
                break
            part = " ".join(reply.spoken[said:])
            mind.remember(asked, part, answered=bool(part))
            said = len(reply.spoken)
            asked = mind.follow_up_message(decision, question)
            odds = self._odds()
            generation = _Generation(self._generate(mind.prompt(asked), odds=odds))
            await self._write(reply, generation, odds, _SENTENCES["brief"], earlier, guesses)
        answered = reply.index > 0
        written = " ".join(reply.spoken[said:])  # as written: the conversation keeps that
        if guesses and answered and self._cut_turn != turn:  # said, and said to be unsure
            who = decision.verify_with or "your chain of command"
            unsure = _listed([re.sub(r"[()]", "", phrase) for phrase in guesses])
            await reply.say(f"I am not sure of {unsure}; check with {who}.",
                            final=False, source="policy", confidence=0.3)
            await self.publish(Metric(name="dialogue_guesses", value=len(guesses), turn=turn,
                                      labels={"values": " | ".join(guesses)[:300]}))
        if not answered and self._cut_turn == turn:  # cut before its first sentence
            await reply.close()
        elif not answered:  # the model said nothing usable: a hedged grounded reply
            why = "the model found no answer in the notes" if unknown else (
                "no sentence of the model passed the checks")
            fallback = mind.hedged(decision, unknown=unknown)
            await self.publish(Metric(name="dialogue_hedged", value=1, turn=turn,
                                      labels={"why": why}))
            await reply.say(fallback, final=True, source="fallback",
                            confidence=min(decision.confidence, 0.3))
        else:
            await reply.close()
        # not the policy's words after it (a hedge there would be copied into later answers)
        mind.remember(asked, written, answered=bool(written))

    async def _write(self, reply: _Reply, generation: _Generation, odds: TokenOdds | None,
                     budget: int, earlier: Sequence[str], guesses: list[str]) -> bool:
        """Say the model's sentences as they complete, each checked first (a failing one is
        dropped with its reason), up to ``budget`` sentences; the values it wrote unsure of go
        to ``guesses``. True if the model's first word was that the notes do not hold it."""
        decision, turn = reply.decision, reply.turn
        unknown = False
        dropped = 0
        try:
            async with asyncio.timeout(self.config.chat.timeout_s):
                async for written in split_sentences(generation.chunks()):
                    if self._cut_turn == turn:
                        break  # the rest would go unheard (and may be a half sentence)
                    generation.sentence()
                    sentence = plain_speech(written)
                    if not sentence:
                        continue
                    if _NOT_IN_NOTES.search(sentence):
                        unknown = reply.index == 0 or unknown
                        break  # the model says the notes do not hold it
                    leak = self.confidential.check(sentence)
                    problem = (_echoes_instructions(sentence) or leak
                               or self.grounds.check(sentence)
                               or _repeats(sentence, reply.spoken)
                               or _said_before(sentence, earlier))
                    if problem:  # (a leak's words stay out of the log too)
                        reply.rejected.append(problem if leak else f"{problem}: {sentence[:80]}")
                        dropped += 1
                        if self.config.llm_role == "extend" or (
                                reply.index == 0 and dropped >= _DROPPED_BEFORE_FALLBACK):
                            break  # a model that left the evidence: the grounded reply now
                        continue
                    guessed = odds.guesses(value_phrases(sentence), self.config.guess_floor,
                                           given=" ".join([decision.question, *reply.spoken])
                                           ) if odds is not None else []
                    guesses += [phrase for phrase, _ in guessed if phrase not in guesses]
                    await reply.say(sentence, final=False, source="llm", confidence=min(
                        (p for _, p in guessed), default=None))
                    if not sentence.endswith((",", ";", ":")):  # a clause of a long sentence
                        budget -= 1  # does not count as one
                    if budget <= 0:
                        break
        except Exception as error:  # a timeout or a failing model: the grounded reply stands
            await self.report_error(error)
        for metric in generation.metrics(turn):
            await self.publish(metric)
        return unknown

    def _odds(self) -> TokenOdds | None:
        """A recorder of how sure the local model is of each token of a reply, or ``None`` (the
        check is off, or the model is behind a server)."""
        llm = getattr(self._chat, "client", None)
        if self.config.guess_floor <= 0 or llm is None or not hasattr(llm, "detokenize"):
            return None
        return TokenOdds(llm.detokenize)

    async def _generate(self, messages: list[tuple[str, str]], *, reader: bool = False,
                        odds: TokenOdds | None = None) -> AsyncIterator[str]:
        """The model's reply as it streams (``odds``: recording how sure it was of each token).
        The model runs in a thread of its own, one generation at a time: a reply given up (a
        timeout, enough sentences) stops at its next token and is over before the next one
        starts (llama.cpp must never run two at once)."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def post(kind: str, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(chunks.put_nowait, (kind, value))

        chain = self._reader if reader else self.chain
        if odds is not None and not reader:
            from llama_cpp import LogitsProcessorList

            chain = self._prompt | self._chat.bind(logits_processor=LogitsProcessorList([odds]))

        def run() -> None:
            with self._model_lock:
                try:
                    # closed at once on a break (the model stops), as a parser's stream is not
                    for chunk in chain.stream({"messages": messages}):
                        if stop.is_set():
                            break
                        post("chunk", str(chunk.content))
                except Exception as error:
                    post("error", error)
                finally:
                    post("end", None)

        thread = threading.Thread(target=run, name="dialogue-model", daemon=True)
        self._model_run = (thread, stop)
        thread.start()
        try:
            while True:
                kind, value = await chunks.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()


class _Speculation:
    """A reply's model generation started on a speculative transcript: its chunks are kept as
    they come, for the final transcript's reply to take (``replay``) or to be dropped."""

    def __init__(self, turn: int | None, text: str, messages: list[tuple[str, str]],
                 odds: TokenOdds | None, chunks: AsyncIterator[str]) -> None:
        self.turn, self.text, self.messages, self.odds = turn, text, messages, odds
        self.started = time.monotonic()
        self._written: list[str] = []
        self._error: BaseException | None = None
        self._done = False
        self._more = asyncio.Event()
        self._pump = asyncio.create_task(self._keep(chunks))

    async def _keep(self, chunks: AsyncIterator[str]) -> None:
        try:
            async for chunk in chunks:
                self._written.append(chunk)
                self._more.set()
        except Exception as error:  # given to the reply that takes it
            self._error = error
        finally:
            self._done = True
            self._more.set()
            await chunks.aclose()  # type: ignore[attr-defined]

    async def replay(self) -> AsyncIterator[str]:
        """What the model has written, then the rest as it comes; the model stops when the
        reply stops reading."""
        given = 0
        try:
            while True:
                self._more.clear()
                while given < len(self._written):
                    yield self._written[given]
                    given += 1
                if self._done:
                    if self._error is not None:
                        raise self._error
                    return
                await self._more.wait()
        finally:
            await self.drop()

    async def drop(self) -> None:
        """Stop the model (at its next token) and wait until it has."""
        if not self._pump.done():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


class _Generation:
    """Times one model generation: to its first token (the model reading the prompt), to its
    first sentence, and its tokens (chunks) per second as it writes, from the first token on.
    A generation ``replayed`` from a speculation gives only its first sentence: its first
    chunks come at once, written before the turn ended."""

    def __init__(self, chunks: AsyncIterator[str], started: float | None = None, *,
                 replayed: bool = False) -> None:
        self._chunks = chunks
        self.started = time.monotonic() if started is None else started
        self.replayed = replayed
        self.count = 0
        self.first_token: float | None = None
        self.first_sentence: float | None = None
        self.ended: float | None = None

    async def chunks(self) -> AsyncIterator[str]:
        async for chunk in self._chunks:
            self.count += 1
            if self.first_token is None:
                self.first_token = time.monotonic()
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
        if self.replayed or self.first_token is None:
            return figures
        figures.append(Metric(name="dialogue_llm_first_token_ms", unit="ms", turn=turn,
                              value=round((self.first_token - self.started) * 1000, 1)))
        end = self.ended or time.monotonic()
        if self.count > 1 and end > self.first_token:
            figures.append(Metric(name="dialogue_llm_tokens_per_s", unit="tok/s", turn=turn,
                                  value=round((self.count - 1) / (end - self.first_token), 1)))
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

    async def say(self, text: str, *, final: bool, source: str,
                  confidence: float | None = None) -> None:
        """Publish one sentence (an empty final one just closes the reply)."""
        decision = self.decision
        if text:
            self.spoken.append(text)
        sure = decision.confidence if confidence is None else confidence
        await self.actor.publish(TwinUtterance(
            text=text, index=self.index, final=final, intent=decision.intent,
            expression=decision.expression, confidence=round(sure, 3), turn=self.turn))
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
