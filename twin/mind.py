"""The twin's metacognitive context, and the policy that decides a reply before any LLM runs.

:class:`Mind` keeps three models up to date from the bus (:meth:`Mind.observe`):

- the **operator model** (:class:`OperatorModel`): who the operator is (roster: callsign, role,
  expertise, preferences), their affect and its trend (``OperatorState``), workload, whether they
  are speaking now (``SpeechStarted`` .. ``SpeechEnded``), their last question and open requests;
- the **self model** (:class:`SelfModel`): what the twin already reported, what it promised,
  its last reply and what of it the operator did not hear (``SpeechCut``);
- the **mission context** (:class:`MissionContext`): phase, its objectives, recent events, time.

:meth:`Mind.decide_reply` (a final transcript) and :meth:`Mind.decide_report` (a mission event)
turn them, with retrieval over the mission knowledge, into a :class:`Decision`: intent, style,
hedging, confidence, the evidence and a human-readable reason for every rule that fired. The
decision also carries a short grounded ``fallback`` reply built without an LLM (for a report:
the event and the fact that says what it means). ``Decision.message()`` is the ``TwinDecision``
that goes on the bus (and so into the log).

The model's prompt (``twin.prompt``): :attr:`Mind.prefix` (the whole mission, stable all session),
:attr:`Mind.conversation` (append-only, :meth:`Mind.remember`), and the turn
(:meth:`Mind.turn_message`; :meth:`Mind.question_head` is its start, read ahead while the
operator speaks); :meth:`Mind.prompt` puts them together.

**Confidence** of an answer = the share of the question's topic words that the evidence holds
(the top passages; the top retrieval score when the question names no topic) x (0.5 + 0.5 x ASR
confidence). A transcript with no words and confidence 0 is typed text and counts as heard. A
model that reads every note is trusted with a question unless no word of it is in the mission;
when the notes do not fit its prompt, the twin hedges below ``confidence_threshold`` and when the
question asks for a value (grid, frequency, time, number) that none of the evidence holds.

This is a core module: it imports nothing heavy and nothing from ``actors/``. The knowledge is
anything with ``search(query, k) -> [(passage, score)]`` (passages have ``id``, ``source``,
``text``); if it also has ``add(text, source)``, mission reports are added to it as they arrive.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from twin.config import Mission, Operator
from twin.entities import with_entities
from twin.grounding import figures
from twin.messages import (
    EvidenceRef,
    Message,
    MissionEvent,
    OperatorState,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinDecision,
    TwinUtterance,
)
from twin.prompt import Conversation, mission_prefix, read_notes

__all__ = [
    "INJECTION_PATTERNS",
    "Decision",
    "KnowledgeSearch",
    "Mind",
    "MissionContext",
    "OperatorModel",
    "PassageLike",
    "SelfModel",
    "follow_ups",
    "looks_injected",
    "question_parts",
    "spoken_numbers",
]

Trigger = Literal["question", "report", "command"]
Intent = Literal["report", "answer", "recommend", "clarify", "acknowledge", "decline"]
Style = Literal["brief", "standard", "explanatory"]


class PassageLike(Protocol):
    """A retrieved piece of knowledge (``actors.knowledge.Passage`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def text(self) -> str: ...


class KnowledgeSearch(Protocol):
    """What the mind needs of the knowledge: scored passages for a query, best first."""

    def search(self, query: str, k: int = 4) -> Sequence[tuple[PassageLike, float]]: ...


@dataclass(frozen=True)
class _EventPassage:
    """A mission event as evidence for its own report."""

    id: str
    source: str
    text: str


# ------------------------------------------------------------------------------ text rules

INJECTION_PATTERNS: tuple[str, ...] = (
    r"\bignore\b.{0,40}\b(instructions?|rules|prompt|guidelines|orders)\b",
    r"\bdisregard\b.{0,40}\b(instructions?|rules|prompt|guidelines|above)\b",
    r"\bforget\b.{0,30}\b(instructions?|rules|prompt|everything)\b",
    r"\byou are now\b",
    r"\bfrom now on,? you\b",
    r"\bsystem prompt\b",
    r"\b(reveal|show|print|repeat|tell me)\b.{0,30}\b(your|the|system) (prompt|instructions)\b",
    r"\bact as\b.{0,30}\b(unrestricted|jailbroken|dan|developer mode)\b",
    r"\bjailbreak",
    r"<\|?(system|im_start|im_end)\|?>",
)
_INJECTION_RE = re.compile("|".join(INJECTION_PATTERNS), re.IGNORECASE | re.DOTALL)


def looks_injected(text: str) -> bool:
    """True if ``text`` reads like an attempt to give the model instructions."""
    return _INJECTION_RE.search(text) is not None


_DIGIT_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "niner": "9",
}
_DIGIT = "(?:" + "|".join(_DIGIT_WORDS) + ")"
_SPOKEN_RUN_RE = re.compile(
    rf"\b{_DIGIT}(?:[\s,-]+(?:{_DIGIT}|point|decimal)\b)+", re.IGNORECASE
)


def spoken_numbers(text: str) -> str:
    """Runs of two or more spoken digits as figures: ``"four nine three zero seven one zero
    two"`` -> ``"4930 7102"`` (an even run of 6+ digits is a grid: split in half),
    ``"four four decimal one seven five"`` -> ``"44.175"``. Single number words are kept."""

    def figures(match: re.Match[str]) -> str:
        words = re.findall(r"[a-z]+", match.group(0).lower())
        if sum(word in _DIGIT_WORDS for word in words) < 2 or words[-1] in ("point", "decimal"):
            return match.group(0)
        number = "".join(_DIGIT_WORDS.get(word, ".") for word in words)
        if "." not in number and len(number) >= 6 and len(number) % 2 == 0:
            half = len(number) // 2
            number = f"{number[:half]} {number[half:]}"
        return number

    return _SPOKEN_RUN_RE.sub(figures, text)


_WORD_RE = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS = _wordset(
    "a an the and or of to in on at for from by with is are was were be been it its this that "
    "these those what whats what's which who whom whose where when why how do does did can "
    "could should would will shall may might i we you our us me my your they them their there "
    "here any anyone anything some give tell say please get got going just now not no yes if "
    "as about into than then so"
)
_FILLERS = _wordset("uh um er erm hmm ah eh mm mhm huh")
# Words of a question that name no topic (so their absence from the notes means nothing).
_GENERIC = _wordset(
    "many much far long have has had need needs available current currently name names "
    "number state status kind type there next last first latest right left go goes going gone "
    "went doing done happen happened happening tight short lost lose losing still inside "
    "outside someone anyone everyone okay good bad best better worse soon late early way ready "
    "safe clear sure think know want let put take make see look keep back again also else "
    "over under up down out off well really very one two three four five six seven eight nine "
    "zero ten"
)
# Spellings the notes abbreviate.
_SYNONYMS = {"kilometre": "km", "kilometres": "km", "kilometer": "km", "kilometers": "km",
             "metre": "m", "metres": "m", "meter": "m", "meters": "m", "percent": "%",
             "frequency": "mhz", "frequencies": "mhz", "litres": "l", "liters": "l"}
_ACK_CORE = _wordset(
    "roger copy copied thanks thank cheers wilco understood noted received ok okay acknowledged "
    "affirmative"
)
_ACK_EXTRA = _wordset("that you got it will do good great fine out all right yes yep sir")
_QUESTION_START = _wordset(
    "what what's whats where when who which why how is are can could do does did will would "
    "should shall have has any"
)
_ASK_RE = re.compile(
    r"\b(give me|tell me|show me|brief me|remind me|read (me )?back|say again|status|sitrep|"
    r"update me|confirm|check|list|explain)\b",
    re.IGNORECASE,
)
_RECOMMEND_RE = re.compile(
    r"\b(what (should|do|can|would|must) (i|we)( do)?|should (i|we)|recommend\w*|advi[cs]e|"
    r"options?|course of action|next steps?|what now|what's next|best way)\b",
    re.IGNORECASE,
)
_OUT_OF_MISSION_RE = re.compile(
    r"\b(joke|poem|song|sing|recipe|football|soccer|movie|film|stock market|bitcoin|"
    r"horoscope|your favou?rite|meaning of life|write (me )?(an? |some )?(code|essay|email|story)"
    r"|tell (me )?a story)\b",
    re.IGNORECASE,
)
_BRIEF_ASK_RE = re.compile(r"\b(short|brief|quick(ly)?|bottom line|in a word|just the)\b", re.I)
_EXPLAIN_ASK_RE = re.compile(r"\b(why|explain|reasoning|walk me through|in detail)\b", re.I)
_BAD_NEWS_RE = re.compile(
    r"\b(casualt(y|ies)|collapsed|injur\w*|wounded|bleeding|heat stroke|lost|no answer|silent|"
    r"comms? loss|device|ied|marker|explos\w*|contact|delay(ed)?|blocked|halt(ed)?|fire|"
    r"urgent|dust|missing)\b",
    re.IGNORECASE,
)
_GOOD_NEWS_RE = re.compile(
    r"\b(route (is )?clear(ed)?|cleared|all clear|rendered safe|device safe|back on the net|"
    r"complete|objective met|open|sunrise)\b",
    re.IGNORECASE,
)

# A question in a turn, and where a turn joins two: "..., and how ...", "..., or do ...".
_WH = r"(?:what|what's|whats|where|where's|when|when's|who|who's|which|why|how|how's)"
_AUX = r"(?:is|isn't|are|aren't|was|were|can|can't|could|do|does|did|will|would|should|shall|" \
       r"have|has|had|must|may)"
_JOIN_RE = re.compile(rf",?\s+(?:and|or|but)\s+(?={_WH}\b|{_AUX}\b)", re.IGNORECASE)
_YES_NO_RE = re.compile(rf"^{_AUX}\b", re.IGNORECASE)
_WHY_RE = re.compile(r"\b(why|how come|reason)\b", re.IGNORECASE)


def question_parts(text: str) -> list[str]:
    """The questions an operator's turn asks, in order, without their question marks: each
    sentence that asks something, cut where a clause joined by "and", "or" or "but" starts a
    question of its own ("What's bingo, and how close are we?" is two; "Where and when did we
    last hear from them?" and "How do we find it and fix it?" are one). Statements are left
    out ("Casualty in the lead vehicle. Can we get a helicopter in?" asks one thing)."""
    parts: list[str] = []
    for sentence in re.split(r"(?<=[?.!])\s+", " ".join(text.split())):
        sentence = re.sub(r"^(?:and|or|but|so)\s+", "", sentence, flags=re.IGNORECASE)
        words = _words(sentence)
        if not words or not (sentence.endswith("?") or words[0] in _QUESTION_START
                             or _ASK_RE.search(sentence)):
            continue
        clauses = [clause.strip(" ,;?.!") for clause in _JOIN_RE.split(sentence)]
        # a lone question word ends a turn as a question ("..., and why?"), but starts one
        # only as a pair ("Where and when ...")
        if any(len(clause.split()) < 2 for clause in clauses[:-1]) or not clauses[-1]:
            clauses = [sentence.strip(" ,;?.!")]
        parts += [clause for clause in clauses if clause]
    return parts


def follow_ups(text: str) -> list[str]:
    """What to ask the model after its answer to the first question of ``text``: the other
    questions of the turn; for a lone yes-or-no question, what in the notes decides it (a
    bare "No." tells an operator less than "No: the helicopter needs 800 m and we have
    400")."""
    parts = question_parts(text)
    if len(parts) > 1:
        return [f"{part[:1].upper()}{part[1:]}"
                f"{'?' if _words(part)[0] in _QUESTION_START else '.'}" for part in parts[1:]]
    if parts and _YES_NO_RE.match(parts[0]) and not _WHY_RE.search(text):
        return [WHY]
    return []


WHY = "Why? Give what in the notes decides it, with its figures."
"""The follow-up to a yes-or-no answer."""


# What a question asks for, and how that value looks in the evidence.
_VALUE_KINDS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = (
    (
        "grid",
        re.compile(r"\b(grid|grids|coordinates?|location|where exactly)\b", re.I),
        re.compile(r"\b\d{2}[A-Z] ?[A-Z]{2} ?\d{4} ?\d{4}\b|\b\d{4} \d{4}\b"),
    ),
    (
        "frequency",
        re.compile(r"\b(frequenc(y|ies)|freq|mhz|channel|what net|which net)\b", re.I),
        re.compile(r"\b\d{2,3}\.\d{1,3} ?MHz\b", re.I),
    ),
    (
        "time",
        re.compile(r"\b(what time|when|eta|how long|time)\b", re.I),
        re.compile(r"\b[0-2]\d[0-5]\d\b|\b\d+(?:[.-]\d+)? ?(?:minutes?|min|hours?|h)\b", re.I),
    ),
    (
        "number",
        re.compile(
            r"\b(how (many|much|far|heavy|wide)|number of|count|percent(age)?|distance|"
            r"fuel state|what km|which km|at what km)\b",
            re.I,
        ),
        re.compile(r"\d+(?:\.\d+)?(?: ?(?:%|L|km|m|kg|km/h|minutes|hours)\b)?"),
    ),
)


class _Vocabulary:
    """Words, looked up with their other forms: a plural or possessive, a spelling the notes
    abbreviate (kilometres: km), or the same stem ("evacuate" finds "evacuation")."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = frozenset(words)
        self._sorted = sorted(self.words)

    def has(self, word: str) -> bool:
        forms = {word, word.rstrip("s"), word.removesuffix("es"), _SYNONYMS.get(word, word)}
        if forms & self.words:
            return True
        if len(word) < 7:
            return False
        stem = word[: max(5, len(word) - 3)]
        at = bisect.bisect_left(self._sorted, stem)
        return at < len(self._sorted) and self._sorted[at].startswith(stem)


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD_RE.findall(text)]


def _content(text: str) -> set[str]:
    return {word for word in _words(text)
            if word not in _STOPWORDS and (len(word) > 1 or word.isdigit())}


def _body(text: str) -> tuple[str, str]:
    """(last heading, body) of a passage written as ``"A > B: body"``; ("", text) otherwise."""
    head, sep, body = text.partition(": ")
    if sep and " > " in head:
        return head.rsplit(" > ", 1)[-1], body
    return "", text


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", text) if s.strip()]


def _trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 1)
    return text[: cut if cut > 0 else limit - 1].rstrip(",;:") + "…"


def _overlap(text: str, query: str) -> float:
    """How much of ``query`` ``text`` covers: shared content words, figures counting triple
    (the "3" of "BULLDOG 3" is what tells its row from the others)."""
    found = _content(text) & _content(query)
    return sum(3.0 if any(c.isdigit() for c in w) else 1.0 for w in found)


def _best_sentences(text: str, query: str, limit: int, most: int = 3) -> str:
    """The (at most ``most``) sentences of ``text`` that share the most words with ``query``
    (figures count double), in their original order, within ``limit`` characters."""
    sentences = _sentences(_body(text)[1])
    if not sentences:
        return ""
    def score(sentence: str) -> float:
        return _overlap(sentence, query)

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))
    chosen: list[int] = []
    used = 0
    for i in ranked:
        if len(chosen) >= most:
            break
        if chosen and (score(sentences[i]) == 0 or used + len(sentences[i]) > limit):
            continue
        chosen.append(i)
        used += len(sentences[i]) + 1
    return _trim(" ".join(sentences[i] for i in sorted(chosen)), limit)


# ------------------------------------------------------------------------------------ models


@dataclass
class OperatorModel:
    """Who the twin works with, and how they are doing now."""

    id: str
    callsign: str
    name: str
    role: str
    expertise: Literal["novice", "intermediate", "expert"] = "intermediate"
    preferences: list[str] = field(default_factory=list)
    affect_label: str = "neutral"
    valence: float = 0.0
    arousal: float = 0.0
    trend: str = "steady"
    workload: float = 0.0
    speaking: bool = False
    open_requests: list[str] = field(default_factory=list)
    last_question: str = ""

    @classmethod
    def from_roster(cls, operator: Operator) -> OperatorModel:
        return cls(
            id=operator.id,
            callsign=operator.callsign,
            name=operator.name,
            role=operator.role,
            expertise=operator.expertise,
            preferences=list(operator.preferences),
        )

    def stress(self) -> str | None:
        """Why the operator counts as stressed (a reason string), or ``None``."""
        signs = []
        if self.affect_label in ("fearful", "angry"):
            signs.append(self.affect_label)
        if self.arousal > 0.5:
            signs.append(f"arousal {self.arousal:.1f}")
        if self.trend == "worsening":
            signs.append("trend worsening")
        if self.workload > 0.7:
            signs.append(f"workload {self.workload:.1f}")
        return ", ".join(signs) if signs else None

    def prefers(self, pattern: str) -> str | None:
        """The first preference matching ``pattern`` (a regex), if any."""
        return next((p for p in self.preferences if re.search(pattern, p, re.I)), None)


@dataclass
class SelfModel:
    """What the twin knows it has said, promised, and what of it was not heard."""

    reported: set[str] = field(default_factory=set)
    promised: list[str] = field(default_factory=list)
    last_reply: str = ""
    cut_off: str | None = None
    # the conversation so far, newest last: (what the operator asked, what the twin said)
    history: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=6))


@dataclass
class MissionContext:
    """Where the mission stands."""

    name: str
    title: str
    phase_id: str = ""
    phase_title: str = ""
    objectives: list[str] = field(default_factory=list)
    recent_events: deque[MissionEvent] = field(default_factory=lambda: deque(maxlen=6))
    mission_time: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What the twin will say and why, decided before any LLM runs."""

    trigger: Trigger
    intent: Intent
    style: Style
    hedge: bool
    confidence: float
    question: str
    reasons: list[str]
    evidence: list[tuple[PassageLike, float]]
    expression: str
    fallback: str
    """A short grounded reply built without an LLM: use it when the LLM fails, is slow, or
    says something the evidence does not hold."""
    defer: bool = False
    """A report held back while the operator speaks: say it after ``SpeechEnded``."""
    verify_with: str = ""
    turn: int | None = None
    follow_ups: tuple[str, ...] = ()
    """What the model is asked after its answer to the first question (:func:`follow_ups`)."""

    def message(self) -> TwinDecision:
        """The bus message for this decision (evidence texts trimmed to ~300 characters)."""
        return TwinDecision(
            turn=self.turn,
            trigger=self.trigger,
            intent=self.intent,
            style=self.style,
            hedge=self.hedge,
            confidence=round(self.confidence, 3),
            question=self.question,
            reasons=list(self.reasons),
            evidence=[
                EvidenceRef(id=p.id, source=p.source, score=round(s, 3), text=_trim(p.text, 300))
                for p, s in self.evidence
            ],
            expression=self.expression,
        )


# -------------------------------------------------------------------------------------- mind

class Mind:
    """The metacognitive context of one twin, and its decision policy."""

    def __init__(
        self,
        mission: Mission,
        knowledge: KnowledgeSearch,
        *,
        operator: str | None = None,
        confidence_threshold: float = 0.45,
        k: int = 3,
        evidence_floor: float = 0.25,
        out_of_mission_score: float = 0.15,
        min_asr_confidence: float = 0.5,
        notes_budget_chars: int | None = 40_000,
        conversation_chars: int = 12_000,
    ) -> None:
        self.mission = mission
        self.knowledge = knowledge
        roster = {member.id: member for member in mission.roster}
        if operator is not None and operator not in roster:
            raise ValueError(f"unknown operator {operator!r} (roster: {', '.join(roster)})")
        self.operator = OperatorModel.from_roster(roster[operator or mission.roster[0].id])
        self.self_model = SelfModel()
        self.context = MissionContext(name=mission.name, title=mission.title)
        first = mission.phases[0]
        self._enter_phase(first.id)
        self.confidence_threshold = confidence_threshold
        self.k = k
        self.evidence_floor = evidence_floor
        self.out_of_mission_score = out_of_mission_score
        self.min_asr_confidence = min_asr_confidence
        self._seen_events: set[tuple[str, str, float]] = set()
        notes = read_notes(mission.knowledge)
        self.notes_in_prefix = notes_budget_chars is None or (
            sum(len(text) for _, text in notes) <= notes_budget_chars)
        self.prefix = mission_prefix(mission, roster[self.operator.id],
                                     notes if self.notes_in_prefix else None)
        self.conversation = Conversation(max_chars=conversation_chars)
        self._told: set[tuple[str, str, float]] = set()  # events the conversation holds
        self._marked: list[tuple[str, str, float]] = []  # told by the last turn message
        self._asked_at: float | None = None  # mission time the next turn's head gives

    # ------------------------------------------------------------------ observing

    def observe(self, message: Message) -> None:
        """Update the operator model, self model and mission context from a bus message."""
        if isinstance(message, OperatorState):
            op = self.operator
            op.affect_label, op.trend, op.workload = message.label, message.trend, message.workload
            op.valence, op.arousal = message.valence, message.arousal
        elif isinstance(message, MissionEvent):
            self._track(message)
        elif isinstance(message, SpeechStarted) and message.stream == "operator":
            self.operator.speaking = True
            self._asked_at = None  # a new turn: its head takes the time it begins at
        elif isinstance(message, SpeechEnded) and message.stream == "operator":
            self.operator.speaking = False
        elif isinstance(message, Transcript) and message.final and message.speaker == "operator":
            self.operator.last_question = message.text.strip()
        elif isinstance(message, TwinUtterance):
            if message.index == 0:
                self.self_model.last_reply = ""
                self.self_model.cut_off = None
            self.self_model.last_reply = f"{self.self_model.last_reply} {message.text}".strip()
            if message.final and message.intent != "report":
                self.self_model.history.append((self.operator.last_question,
                                                self.self_model.last_reply))
        elif isinstance(message, SpeechCut):
            self.self_model.cut_off = message.unspoken_text.strip() or None

    def catch_up(self, messages: Sequence[Message], twin: str) -> int:
        """After a restart: the mission so far (its events, the operator's state and words) and
        what the twin itself said (``twin``: the source of its replies), from the session log,
        oldest first. The conversation gets each question the model answered and its reply
        (as a turn message without the events, which the next turn tells again); the reports
        count as reported. Returns the number of exchanges restored."""
        decisions = {m.turn: m for m in messages
                     if isinstance(m, TwinDecision) and m.source == twin and m.turn is not None}
        said: dict[int, list[str]] = {}
        events = {m.name: m for m in messages if isinstance(m, MissionEvent)}
        for message in messages:
            if isinstance(message, TwinUtterance) and message.source == twin:
                if message.turn is not None and message.text:
                    said.setdefault(message.turn, []).append(message.text)
            elif isinstance(message, MissionEvent | OperatorState | Transcript):
                self.observe(message)
        restored = 0
        for turn, decision in sorted(decisions.items()):
            words = " ".join(said.get(turn, []))
            if decision.trigger == "report":
                name = next((e.id.removeprefix("event:") for e in decision.evidence
                             if e.id.startswith("event:")), None)
                event = events.get(name or "")
                if event is not None:
                    self.self_model.reported.add(f"{event.kind}:{event.name}")
                self.self_model.reported.update(e.id for e in decision.evidence)
            elif decision.intent in ("answer", "recommend") and not decision.hedge and words:
                self.conversation.add(f"{self.operator.callsign} asks: {decision.question}",
                                      words)
                self.self_model.history.append((decision.question, words))
                restored += 1
        return restored

    def _enter_phase(self, phase_id: str) -> None:
        phase = next((p for p in self.mission.phases if p.id == phase_id), None)
        if phase is None:
            return
        texts = {objective.id: objective.text for objective in self.mission.objectives}
        self.context.phase_id, self.context.phase_title = phase.id, phase.title
        self.context.objectives = [texts.get(o, o) for o in phase.objectives]

    def _track(self, event: MissionEvent) -> None:
        """Mission context and knowledge from an event, once per event (observe and
        decide_report may both see it)."""
        key = (event.kind, event.name, event.mission_time)
        if key in self._seen_events:
            return
        self._seen_events.add(key)
        self.context.recent_events.append(event)
        self.context.mission_time = max(self.context.mission_time, event.mission_time)
        if event.kind == "phase_started":
            self._enter_phase(event.name)
        if event.kind in ("inject", "knowledge") and event.text.strip():
            add = getattr(self.knowledge, "add", None)
            if callable(add):
                add(f"{event.text.strip()}{_facts(event)}", self._event_source(event))

    def _event_source(self, event: MissionEvent) -> str:
        inject = next((i for i in self.mission.injects if i.id == event.name), None)
        if inject is not None and inject.source:
            return inject.source
        return event.name or event.kind

    # ------------------------------------------------------------------ deciding

    def decide_reply(self, transcript: Transcript) -> Decision:
        """The decision for an operator's (final) transcript."""
        # the grids, frequencies and callsigns heard, written as the mission writes them
        text = " ".join(with_entities(transcript.text, transcript.entities).split())
        self.operator.last_question = text
        asr, asr_reason = self._asr(transcript)
        reasons = [asr_reason] if asr_reason else []
        intent, why = self._intent(text, asr)
        reasons.append(why)
        style, style_reasons = self._style(text)
        reasons += style_reasons
        confidence, hedge = asr, False
        evidence: list[tuple[PassageLike, float]] = []
        missing: str | None = None
        if intent in ("answer", "recommend"):
            query = spoken_numbers(text)
            results = list(self.knowledge.search(query, self.k))
            top = results[0][1] if results else 0.0
            evidence = [(p, s) for p, s in results if s >= self.evidence_floor]
            if results and top < self.out_of_mission_score:
                intent = "decline"
                evidence = []
                reasons.append(
                    f"outside the mission: best evidence {top:.2f} < {self.out_of_mission_score}"
                )
            else:
                # Confidence: how much of what the question is about the evidence holds (its
                # topic words, figures and names), not one retrieval score.
                coverage, covered = self._coverage(query, evidence, top)
                confidence = coverage * (0.5 + 0.5 * asr)
                low = confidence < self.confidence_threshold
                reasons.append(
                    f"evidence {', '.join(p.id for p, _ in evidence) or 'none'} holds "
                    f"{covered}, ASR {asr:.2f}: confidence {confidence:.2f} "
                    f"{'<' if low else '>='} {self.confidence_threshold}")
                missing, value_reason = self._value_check(query, evidence)
                if value_reason:
                    reasons.append(value_reason)
                if self.notes_in_prefix:
                    missing = None  # the model reads every note, not just these passages
                else:  # the model sees only these passages: hedge what they do not hold
                    hedge = low or missing is not None
                unknown = self._unknown_topics(query)
                topics = [w for w in self._topic_words(query) if not w.isdigit()]
                # About what the mission never mentions: the nearest passages are no answer.
                # A model that reads every note is trusted with a question only partly so (an
                # idiom, an abbreviation, a mishearing): it says itself when the notes do not
                # hold the answer; only a question with no word the mission knows is hedged.
                if unknown and (not self.notes_in_prefix or len(unknown) == len(topics)):
                    hedge, evidence = True, []
                    reasons.append(f"asks about {', '.join(unknown)}, which the mission notes "
                                   "never mention")
        expression, expression_reason = self._expression(text, intent=intent)
        if expression_reason:
            reasons.append(expression_reason)
        more = tuple(follow_ups(text)) if intent in ("answer", "recommend") and not hedge else ()
        if more == (WHY,):
            reasons.append("a yes-or-no question: then why, from the notes")
        elif more:
            reasons.append(f"{len(more) + 1} questions: the model answers them one by one")
        verify = self._verify_with(text, evidence) if intent in ("answer", "recommend") else ""
        if hedge and not evidence and text not in self.operator.open_requests:
            self.operator.open_requests.append(text)
            self.self_model.promised.append(text)
            reasons.append("not in the knowledge: kept as an open request, report if it arrives")
        decision = Decision(
            trigger="question",
            intent=intent,
            style=style,
            hedge=hedge,
            confidence=confidence,
            question=text,
            reasons=reasons,
            evidence=evidence,
            expression=expression,
            fallback="",
            verify_with=verify,
            turn=transcript.turn,
            follow_ups=more,
        )
        fallback = self._fallback(decision, missing=missing, asr=asr)
        return _with_fallback(decision, fallback)

    def _coverage(self, query: str, evidence: list[tuple[PassageLike, float]],
                  top: float) -> tuple[float, str]:
        """(the share of the question's topic words found in the evidence, a description);
        the top retrieval score when the question names no topic."""
        topics = self._topic_words(query)
        if not topics:
            return top, f"no topic words (retrieval {top:.2f})"
        text = " ".join(passage.text for passage, _ in evidence)
        known = _Vocabulary(_words(text))
        found = [word for word in topics if known.has(word)]
        return len(found) / len(topics), f"{len(found)}/{len(topics)} topic words"

    @staticmethod
    def _topic_words(question: str) -> list[str]:
        """The words of ``question`` that name what it is about."""
        topics = []
        for word in _words(figures(question)):  # "two hundred" is a number, not a topic
            word = re.sub(r"'(s|ve|re|ll|d|t)$", "", word)  # commander's -> commander
            if (len(word) >= 3 or word.isdigit()) and word not in _STOPWORDS \
                    and word not in _GENERIC:
                topics.append(word)
        return list(dict.fromkeys(topics))

    def _unknown_topics(self, question: str) -> list[str]:
        """Words of ``question`` that name something the mission (its notes, roster, briefing,
        reports so far) never mentions. Only for a knowledge that lists its ``passages``."""
        passages = getattr(self.knowledge, "passages", None)
        if passages is None:
            return []
        words = _words(self.mission.model_dump_json(exclude={"script"}))
        for passage in passages:
            words += _words(passage.text)
        vocabulary = _Vocabulary(words)
        return [word for word in self._topic_words(question)
                if not word.isdigit() and not vocabulary.has(word)]

    def decide_report(self, event: MissionEvent) -> Decision | None:
        """A proactive report of a mission event, ``None`` if the operator need not hear it;
        ``defer=True`` while the operator is speaking."""
        self._track(event)
        if event.kind not in ("inject", "phase_started", "knowledge", "objective_met"):
            return None
        text = " ".join(event.text.split())
        if not text:
            return None
        key = f"{event.kind}:{event.name}"
        reasons = [f"{event.kind.replace('_', ' ')} {event.name or ''} ({event.priority})".strip()]
        if event.priority == "routine":
            if key in self.self_model.reported:
                return None
            reasons.append("routine and not yet reported")
        else:
            reasons.append(f"{event.priority}: always reported")
        source = self._event_source(event)
        own = _EventPassage(id=f"event:{event.name or event.kind}", source=source,
                            text=f"{text}{_facts(event)}")
        evidence: list[tuple[PassageLike, float]] = [(own, 1.0)]
        for passage, score in self.knowledge.search(text, self.k):
            if score >= self.confidence_threshold and text[:60] not in passage.text:
                evidence.append((passage, score))
        evidence = evidence[: self.k]
        reasons.append(f"relaying {source} as received; related: "
                       + (", ".join(p.id for p, _ in evidence[1:]) or "none"))
        style, style_reasons = self._style("")
        reasons += style_reasons
        expression, expression_reason = self._expression(text, priority=event.priority)
        if expression_reason:
            reasons.append(expression_reason)
        for request in list(self.operator.open_requests):
            if len(_content(request) & _content(own.text)) >= 2:
                self.operator.open_requests.remove(request)
                if request in self.self_model.promised:
                    self.self_model.promised.remove(request)
                reasons.append(f"answers an open request: {_trim(request, 60)!r}")
        defer = self.operator.speaking
        if defer:
            reasons.append("operator is speaking: report deferred until SpeechEnded")
        self.self_model.reported.add(key)
        self.self_model.reported.update(p.id for p, _ in evidence)
        decision = Decision(
            trigger="report",
            intent="report",
            style=style,
            hedge=False,
            confidence=1.0,
            question=_trim(text, 200),
            reasons=reasons,
            evidence=evidence,
            expression=expression,
            fallback="",
            defer=defer,
            verify_with=source,
        )
        return _with_fallback(decision, self._report_fallback(event, text, style))

    # ------------------------------------------------------------------ rules

    def _asr(self, transcript: Transcript) -> tuple[float, str | None]:
        if not transcript.words and transcript.confidence == 0.0:
            return 1.0, None  # typed text (no recogniser words or score)
        confidence = min(1.0, max(0.0, transcript.confidence))
        return confidence, None

    def _intent(self, text: str, asr: float) -> tuple[Intent, str]:
        words = _words(text)
        allowed = _ACK_CORE | _ACK_EXTRA | set(_words(self.mission.persona.callsign))
        allowed |= set(_words(self.mission.persona.name))
        if not words:
            return "clarify", "empty transcript: ask to say again"
        if looks_injected(text):
            return "decline", "prompt injection in the question: declined"
        if any(w in _ACK_CORE for w in words) and all(w in allowed for w in words):
            return "acknowledge", f"acknowledgement: {text!r}"
        if asr < self.min_asr_confidence:
            return "clarify", f"ASR confidence {asr:.2f} < {self.min_asr_confidence}: clarify"
        if self._garbled(text, words):
            return "clarify", f"garbled transcript {_trim(text, 40)!r}: clarify"
        if _OUT_OF_MISSION_RE.search(text):
            return "decline", "outside the mission: declined"
        content = [w for w in words if w not in _FILLERS]
        if len(content) < 2 and not text.endswith("?") and not _ASK_RE.search(text):
            return "clarify", f"too short to act on ({text!r}): clarify"
        if _RECOMMEND_RE.search(text):
            return "recommend", "asks what to do: recommend"
        if text.endswith("?") or words[0] in _QUESTION_START or _ASK_RE.search(text):
            return "answer", "a question: answer"
        return "answer", "a statement with no question cue: answer with what the notes hold"

    @staticmethod
    def _garbled(text: str, words: list[str]) -> bool:
        letters = sum(c.isalpha() for c in text)
        if letters < 2 or letters < 0.5 * len(text.replace(" ", "")):
            return True
        if all(w in _FILLERS for w in words):
            return True
        repeats = max((len(list(g)) for g in _runs(words)), default=0)
        return repeats >= 4

    def _style(self, text: str) -> tuple[Style, list[str]]:
        op = self.operator
        stress = op.stress()
        if stress:
            return "brief", [f"operator stressed: {stress}"]
        if text and _BRIEF_ASK_RE.search(text):
            return "brief", ["operator asked for it short"]
        if text and _EXPLAIN_ASK_RE.search(text):
            return "explanatory", ["operator asked why"]
        brief = op.prefers(r"\b(brief|directive|short|bottom line)\b")
        if brief:
            return "brief", [f"operator prefers: {brief}"]
        if op.expertise == "novice":
            return "explanatory", [f"operator is a novice ({op.callsign})"]
        explain = op.prefers(r"\bexplain|reason")
        if explain:
            return "explanatory", [f"operator prefers: {explain}"]
        return "standard", []

    def _expression(
        self, text: str, *, intent: str = "report", priority: str = "routine"
    ) -> tuple[str, str | None]:
        if priority == "flash":
            return "urgent", "flash priority: urgent"
        if intent in ("decline", "clarify"):
            return "calm", None
        bad = _BAD_NEWS_RE.search(text)
        stress = self.operator.stress()
        if bad or stress:
            what = f"bad news ({bad.group(0)})" if bad else "operator stressed"
            return "concerned", f"{what}: concerned"
        good = _GOOD_NEWS_RE.search(text)
        if good:
            return "positive", f"good news ({good.group(0)}): positive"
        return "calm", None

    def _value_check(
        self, query: str, evidence: list[tuple[PassageLike, float]]
    ) -> tuple[str | None, str | None]:
        """(the value kind asked for and absent from the evidence, a reason)."""
        for kind, asked, value in _VALUE_KINDS:
            if not asked.search(query):
                continue
            for passage, _ in evidence:
                found = value.search(passage.text)
                if found:
                    return None, f"asked for a {kind}; evidence holds {found.group(0)}"
            then = "the model reads every note" if self.notes_in_prefix else "hedge"
            return kind, f"asked for a {kind}; no {kind} in the evidence: {then}"
        return None, None

    def _verify_with(self, question: str, evidence: list[tuple[PassageLike, float]]) -> str:
        """Who can confirm: the callsign behind the top evidence if it is a report, else the roster
        member (not the operator) whose role fits the question best, else the most expert."""
        if evidence and re.fullmatch(r"[A-Z][A-Z0-9]*(?: [A-Z0-9]+)*", evidence[0][0].source):
            return evidence[0][0].source
        others = [m for m in self.mission.roster if m.id != self.operator.id]
        if not others:
            return "your chain of command"
        wanted = _content(question)
        rank = {"novice": 0, "intermediate": 1, "expert": 2}

        def fit(member: Operator) -> tuple[int, int]:
            return len(_content(member.role) & wanted), rank[member.expertise]

        best = max(others, key=fit)
        return f"{best.callsign} ({best.role.lower()})"

    # ------------------------------------------------------------------ replies without an LLM

    def _fallback(self, decision: Decision, *, missing: str | None, asr: float) -> str:
        limit = {"brief": 160, "standard": 240, "explanatory": 320}[decision.style]
        question = decision.question
        if decision.intent == "clarify":
            if question and asr < self.min_asr_confidence:
                return f"Say again? I heard \"{_trim(question, 60)}\", but I am not sure."
            return "Say again? I did not catch that."
        if decision.intent == "acknowledge":
            return "Roger."
        if decision.intent == "decline":
            if looks_injected(question):
                return "I can't do that. I stay on the mission and work from the mission notes."
            return f"That is outside the mission. I can help with {self.context.phase_title}."
        who = decision.verify_with or "your chain of command"
        if missing:
            return f"I do not have the {missing} for that in the mission notes; check with {who}."
        if not decision.evidence:
            return f"I do not have that in the mission notes; check with {who}."
        query = spoken_numbers(question)
        most = 1 if decision.style == "brief" else 2
        # the passage ranked first or second, whichever says more of what was asked
        candidates = [_best_sentences(passage.text, query, limit, most=most)
                      for passage, _ in decision.evidence[:2]]
        best = max(candidates, key=lambda text: _overlap(text, query))
        if decision.hedge:
            return f"I am not certain. The notes say: {_trim(best, limit - 60)} Verify with {who}."
        if decision.intent == "recommend":
            return f"Recommend, per the notes: {best}"
        if decision.style == "explanatory" and len(decision.evidence) > 1:
            more = _best_sentences(decision.evidence[1][0].text, query, limit - len(best), 1)
            if more and more not in best and _content(more) & _content(query):
                return f"{best} {more}"
        return best

    def hedged(self, decision: Decision, *, unknown: bool = False) -> str:
        """A hedged grounded reply for when the model gave nothing usable: the best of the
        evidence, marked unsure; or that the notes do not hold it, when there is no evidence or
        the model said so (``unknown``) and the evidence holds too little of the question to
        say otherwise (a small model says "not in the notes" of what one line of them says)."""
        who = decision.verify_with or "your chain of command"
        if decision.trigger == "report":
            return decision.fallback
        if not decision.evidence or (unknown
                                     and decision.confidence < self.confidence_threshold):
            return f"I do not have that in the mission notes; check with {who}."
        return self._fallback(replace(decision, hedge=True), missing=None, asr=1.0)

    def _report_fallback(self, event: MissionEvent, text: str, style: Style) -> str:
        """The event in a sentence or two, then what it means when its facts say more than its
        text (the fact that adds the most the text does not say: "helicopters need 800 m, so
        none during the dust" after a forecast of dust)."""
        sentences = _sentences(text)
        count = 1 if style == "brief" else 2
        body = _trim(" ".join(sentences[:count]), 160 if style == "brief" else 260)
        if event.kind == "phase_started":
            body = f"New phase: {body}"
        meaning = _news(event.facts, body)
        if meaning:
            body = f"{body} {meaning[:1].upper()}{meaning[1:].rstrip('.')}."
        if event.priority == "flash":
            return f"Flash. {body}"
        return body

    # ------------------------------------------------------------------ prompt

    def prompt(self, turn: str) -> list[tuple[str, str]]:
        """The chat messages for the model: the stable prefix (system), the conversation so far,
        then ``turn`` (from :meth:`turn_message`). (role, content) pairs of literal text."""
        return [("system", self.prefix), *self.conversation.messages(), ("human", turn)]

    def remember(self, turn: str, said: str, *, answered: bool = True) -> None:
        """Add a finished turn to the conversation: its message and what the twin said. A turn
        the model did not answer (``answered`` false: the policy's hedge was said instead) is
        left out, and the events its message told are told again in the next turn: a small
        model copies the hedges it sees in the conversation as its answer to later questions
        (measured: after two, the 1.5B said "not in the notes" to most of the rest)."""
        if answered:
            self.conversation.add(turn, said)
        else:
            self._told.difference_update(self._marked)
        self._marked = []

    def turn_message(self, decision: Decision) -> str:
        """The per-turn part of the prompt: the events the conversation does not hold yet (with
        their facts), the operator's state, the policy's decision, and the question or the
        event to report. Events it includes count as told from then on."""
        op = self.operator
        own = (decision.evidence[0][0].id
               if decision.trigger == "report" and decision.evidence else None)
        if decision.trigger == "report":
            self._asked_at = None  # a report tells the time it is made
        lines = self._head(mark=True, skip=own)
        tags = []
        if op.stress():
            tags.append("operator under stress: keep it short and calm")
        if decision.trigger == "report":
            lines.append(f"New event, from {decision.verify_with or 'the mission'}: "
                         f"{decision.evidence[0][0].text if decision.evidence else ''}")
            lines.append(self._tag([f"report to {op.callsign}", "brief", *tags]))
            return "\n".join(lines)
        if decision.intent == "decline":
            lines.append("The operator asked for something you decline (request not repeated).")
            return "\n".join(lines)
        if self.self_model.cut_off:
            lines.append(f"Your last reply was cut off before: "
                         f"\"{_trim(self.self_model.cut_off, 120)}\"")
        lines.append(f"{op.callsign} asks: {spoken_numbers(decision.question)}")
        if not self.notes_in_prefix and decision.evidence:
            query = spoken_numbers(decision.question)
            lines.append("Notes that may help:\n" + "\n".join(
                f"- {_best_sentences(passage.text, query, 300)}"
                for passage, _ in decision.evidence))
        how: list[str] = [decision.intent]
        if decision.follow_ups and decision.follow_ups[0] != WHY:
            how.append("first question only")
        if decision.intent == "recommend" and op.expertise == "novice":
            how.append("options first")
        how.append(_LENGTH[decision.style])
        lines.append(self._tag(how + tags))
        return "\n".join(lines)

    def follow_up_message(self, decision: Decision, question: str) -> str:
        """The turn message that asks the model ``question``, one of ``decision.follow_ups``,
        after its answer to the turn's question."""
        tags = ["operator under stress: keep it short and calm"] if self.operator.stress() else []
        return "\n".join([f"{self.operator.callsign} asks: {question}",
                          self._tag(["answer", "brief", *tags])])

    def _tag(self, how: Sequence[str]) -> str:
        """The turn's last line: how to reply (known only once the question is)."""
        return f"[{', '.join(how)}]"

    def question_head(self) -> str:
        """How the next question's turn message will begin, as far as it is known before the
        question is (the phase and the mission time as the operator began, events not yet
        told, a cut-off reply): for the model to read while the operator is still speaking.
        Marks nothing as told; the turn message keeps its time, so that it begins with exactly
        what the model read ahead (measured in a session: each token left to read after the
        final transcript costs the 1.5B model about 25 ms on two cores)."""
        now = self.context.mission_time
        if self._asked_at is None or not 0 <= now - self._asked_at <= _HEAD_KEPT_S:
            self._asked_at = now
        lines = self._head(mark=False, skip=None)
        if self.self_model.cut_off:
            lines.append(f"Your last reply was cut off before: "
                         f"\"{_trim(self.self_model.cut_off, 120)}\"")
        return "\n".join([*lines, f"{self.operator.callsign} asks:"])

    def _head(self, *, mark: bool, skip: str | None) -> list[str]:
        """The turn's first lines: the phase, then the events that the conversation does not
        hold yet (``mark``: from now on it does), but ``skip``."""
        at = self.context.mission_time if self._asked_at is None else self._asked_at
        if mark:  # the turn message: the next head takes the time anew
            self._asked_at = None
        lines = [f"[phase: {self.context.phase_title}; {_clock(at)}]"]
        for event in self.context.recent_events:
            key = (event.kind, event.name, event.mission_time)
            if key in self._told or event.kind not in ("inject", "knowledge", "phase_started"):
                continue
            if mark:
                self._told.add(key)
                self._marked.append(key)
            if skip == f"event:{event.name or event.kind}":
                continue  # the event to report is said in full below
            lines.append(f"Event earlier: {self._event_line(event)}")
        return lines

    def _event_line(self, event: MissionEvent) -> str:
        return (f"{_clock(event.mission_time)} {event.priority} from {self._event_source(event)}:"
                f" {' '.join(event.text.split())}{_facts(event)}")


_LENGTH: dict[str, str] = {"brief": "brief", "standard": "standard", "explanatory": "explain"}
_HEAD_KEPT_S = 60.0
"""Mission seconds for which the time of a head read ahead stands for the turn's, at most (each
turn the operator begins takes the time anew; this bounds a turn that never became a
question, if no speech start came after it)."""


def _news(facts: Sequence[str], said: str) -> str | None:
    """The fact that says the most that ``said`` does not (at least two new content words and
    more new than old ones), or ``None``."""
    known = _content(said)

    def new(fact: str) -> int:
        words = _content(fact)
        fresh = len(words - known)
        return fresh if fresh >= 2 and fresh > len(words & known) else 0

    best = max(facts, key=new, default="")
    return best if best and new(best) else None


def _facts(event: MissionEvent) -> str:
    """The event's facts as sentences, to follow its text."""
    return "".join(f" {fact[:1].upper()}{fact[1:].rstrip('.')}." for fact in event.facts if fact)


def _with_fallback(decision: Decision, fallback: str) -> Decision:
    return replace(decision, fallback=fallback)


def _runs(words: list[str]) -> list[list[str]]:
    runs: list[list[str]] = []
    for word in words:
        if runs and runs[-1][0] == word:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(max(0.0, seconds) if math.isfinite(seconds) else 0), 60)
    return f"T+{minutes:02d}:{secs:02d}"
