"""A recorded session read back for review: what happened, turn by turn, from the log alone.

In: a session log (``twin.log``). Out: a :class:`SessionReview` of plain dataclasses — the
mission's events and phases, every operator turn and twin report with its decision, reply and
stage times, the operator's affect over time (each modality's view), emotion shifts with the
words around them, objectives, errors and a few key moments — which ``twin.review.report``
renders as HTML and ``twin.review.export`` writes as JSON and CSV.

It reads what it can and says what it could not: a log from another twin version (missing
metadata, unknown message types: counted, skipped), a log cut short by a crash (no
``mission_ended``; an SQLite file damaged at the end: the rows before the damage are kept) and
a session whose emotion modeller or avatar did not run (those parts are empty). Times are
seconds from the mission's start (``mission_started``), or from the first message when the log
has none.
"""

from __future__ import annotations

import itertools
import sqlite3
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.log import SCHEMA_VERSION, LogError, LogReader
from twin.messages import (
    MESSAGE_TYPES,
    ActorError,
    EmotionEstimate,
    Message,
    MissionEvent,
    OperatorState,
    Speech,
    SpeechCut,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    TwinDecision,
    TwinUtterance,
)

# What a review reads: everything but the raw audio and the per-frame video features.
REVIEW_TYPES = (
    "mission_event", "transcript", "speech_started", "speech_ended", "twin_decision",
    "twin_utterance", "speech", "speech_cut", "emotion_estimate", "operator_state",
    "actor_error", "trainer_control",
)
# the latency stages of a turn, in order, from the true end of the operator's voice
STAGES = ("turn_end", "transcribe", "decide", "phrase", "voice")
STAGE_NAMES = {
    "turn_end": "end of voice -> end of turn decided",
    "transcribe": "end of turn -> final transcript",
    "decide": "final transcript -> decision",
    "phrase": "decision -> first sentence",
    "voice": "first sentence -> first speech audio",
}
LOW_CONFIDENCE = 0.5
_CHUNK = 500


class ReviewError(RuntimeError):
    """A session that cannot be reviewed at all (no log, not a twin log)."""


@dataclass
class EventRow:
    t: float
    mission_time: float
    kind: str
    name: str
    text: str
    priority: str
    reason: str


@dataclass
class PhaseSpan:
    id: str
    title: str
    start: float
    end: float
    mission_start: float
    note: str = ""  # why it started early, when it did


@dataclass
class Evidence:
    id: str
    source: str
    score: float
    text: str


@dataclass
class TurnRow:
    """One operator turn (``kind="operator"``) or one report the twin made (``"report"``)."""

    turn: int
    kind: str
    start: float
    operator_text: str = ""
    transcript_confidence: float | None = None
    speech_duration: float | None = None
    trigger: str = ""
    intent: str = ""
    style: str = ""
    hedge: bool | None = None
    confidence: float | None = None
    question: str = ""
    reasons: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    reply: str = ""
    sentences: int = 0
    cut: str = ""  # what the operator heard before they interrupted, when they did
    emotion: str = ""  # the fused emotion of the operator's words in this turn
    latency: dict[str, float] = field(default_factory=dict)  # stage -> seconds, "total"


@dataclass
class ModalityView:
    modality: str
    label: str
    valence: float
    arousal: float
    confidence: float
    weight: float
    available: bool


@dataclass
class AffectRow:
    """One ``EmotionEstimate`` (``kind="estimate"``) or ``OperatorState`` (``"state"``)."""

    t: float
    turn: int | None
    kind: str
    label: str
    valence: float
    arousal: float
    confidence: float
    modalities: list[ModalityView] = field(default_factory=list)
    trend: str = ""
    shift: str = ""
    workload: float | None = None
    stress: float | None = None
    engagement: float | None = None
    shift_turn: int | None = None  # the operator turn the shift is tied to, when the modeller says
    shift_utterance: str = ""
    shift_twin_before: str = ""  # what the twin said just before that utterance


@dataclass
class ShiftRow:
    t: float
    turn: int | None
    shift: str
    valence: float
    arousal: float
    before: str  # the operator's previous words
    said: str  # the operator's words of this turn
    reply: str  # the twin's reply to them
    twin_before: str = ""  # what the twin said just before the operator's words


@dataclass
class ObjectiveRow:
    id: str
    text: str
    phase: str
    met: bool
    t: float | None = None
    mission_time: float | None = None
    reason: str = ""


@dataclass
class ErrorRow:
    t: float
    actor: str
    error: str
    recoverable: bool
    action: str


@dataclass
class SessionReview:
    path: str
    session: str
    mission: str
    title: str
    mode: str
    speed: float | None
    created: float | None
    schema_version: int | None
    origin: float
    duration: float
    ended: bool
    end_reason: str
    messages: int
    skipped: int
    counts: dict[str, int]
    notes: list[str]
    events: list[EventRow]
    phases: list[PhaseSpan]
    turns: list[TurnRow]
    affect: list[AffectRow]
    shifts: list[ShiftRow]
    objectives: list[ObjectiveRow]
    errors: list[ErrorRow]
    moments: list[str]


# ---------------------------------------------------------------------------- reading


def _read(reader: LogReader, notes: list[str]) -> tuple[list[Message], int]:
    """The review's messages in log order, in chunks. Past damage, rows are probed one by one
    and without the type index (which may be what was lost); a damaged b-tree can answer out of
    order, so only rows after the last one kept are taken."""
    messages: list[Message] = []
    wanted: tuple[str, ...] | None = REVIEW_TYPES
    after, failures, undecodable = 0, 0, 0
    damage = reader.damaged
    while failures < 200:
        try:
            batch = list(reader.records(types=wanted, after_id=after,
                                        limit=_CHUNK if failures == 0 else 1))
            if any(record.id <= after for record in batch):
                raise sqlite3.DatabaseError("rows out of order")
        except sqlite3.DatabaseError as error:
            damage, wanted = damage or str(error), None
            failures += 1
            after += 1
            continue
        if not batch:
            break
        failures = 0
        for record in batch:
            after = record.id
            if record.message is None:
                undecodable += 1
            elif record.type in REVIEW_TYPES:
                messages.append(record.message)
    if damage is not None:
        notes.append(f"the log file is damaged ({damage}; cut short by a crash?): this report "
                     f"holds the {len(messages)} messages that could still be read")
    return messages, undecodable


def _meta(reader: LogReader, notes: list[str]) -> dict[str, Any]:
    try:
        return reader.meta()
    except sqlite3.DatabaseError as error:
        notes.append(f"the session's metadata cannot be read ({error})")
        return {}


def _counts(reader: LogReader) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tag in MESSAGE_TYPES:
        try:
            found = reader.count(types=[tag])
        except sqlite3.DatabaseError:
            continue
        if found:
            counts[tag] = found
    return counts


def read_session(path: str | Path) -> SessionReview:
    """Review the session log at ``path``; ``ReviewError`` if it is not a readable twin log."""
    notes: list[str] = []
    try:
        reader = LogReader(path)
    except LogError as error:
        raise ReviewError(str(error)) from None
    with reader:
        meta = _meta(reader, notes)
        counts = _counts(reader)
        messages, skipped = _read(reader, notes)
    return _review(Path(path), meta, counts, messages, skipped, notes)


def _review(path: Path, meta: dict[str, Any], counts: dict[str, int], messages: list[Message],
            skipped: int, notes: list[str]) -> SessionReview:
    version = meta.get("schema_version")
    if version is None:
        notes.append("the log has no schema version: written by an older twin; read as far as "
                     "it goes")
    elif version != SCHEMA_VERSION:
        notes.append(f"the log has schema version {version}, this twin reads {SCHEMA_VERSION}: "
                     "read as far as it goes")
    if skipped:
        notes.append(f"{skipped} rows could not be decoded (damaged, or message types and fields "
                     "of another twin version) and were skipped")
    mission_meta = meta.get("mission") if isinstance(meta.get("mission"), dict) else {}
    assert isinstance(mission_meta, dict)
    if not mission_meta:
        notes.append("the log does not hold its mission file: objectives and phase titles are "
                     "taken from the events alone")
    events = [m for m in messages if isinstance(m, MissionEvent)]
    started = next((e for e in events if e.kind == "mission_started"), None)
    origin = started.t if started else (messages[0].t if messages else 0.0)
    last_t = max((m.t for m in messages), default=origin)
    end = next((e for e in events if e.kind == "mission_ended"), None)
    if end is None:
        notes.append("the log ends before the mission did (the session was stopped or crashed): "
                     "this report covers what was recorded")
    held = sum(counts.values())
    if not messages and not held:
        notes.append("the log holds no messages")
    elif not messages:  # figures alone (metrics, audio): nothing a review reads
        notes.append(f"the log holds {held} messages ({', '.join(sorted(counts))}), none of the "
                     "kinds a review reads (mission events, speech and words, affect)")

    def rel(t: float) -> float:
        return round(t - origin, 3)

    event_rows = [EventRow(rel(e.t), e.mission_time, e.kind, e.name, e.text, e.priority,
                           getattr(e, "reason", "")) for e in events]
    turns = _turns(messages, rel)
    affect = _affect(messages, rel)
    review = SessionReview(
        path=str(path),
        session=str(meta.get("session") or path.stem),
        mission=str(meta.get("mission_name") or mission_meta.get("name")
                    or (started.mission if started else "")),
        title=str(mission_meta.get("title") or (started.text if started else "") or path.stem),
        mode=str(meta.get("mode") or "unknown"),
        speed=_float(meta.get("speed")),
        created=_float(meta.get("created")),
        schema_version=version if isinstance(version, int) else None,
        origin=origin,
        duration=rel(last_t),
        ended=end is not None,
        end_reason=end.text if end is not None else "",
        messages=sum(counts.values()) if counts else len(messages),
        skipped=skipped,
        counts=counts,
        notes=notes,
        events=event_rows,
        phases=_phases(events, mission_meta, rel, rel(last_t)),
        turns=turns,
        affect=affect,
        shifts=_shifts(affect, turns),
        objectives=_objectives(events, mission_meta, rel),
        errors=[ErrorRow(rel(m.t), m.actor, m.error, m.recoverable, m.action)
                for m in messages if isinstance(m, ActorError)],
        moments=[],
    )
    review.moments = _moments(review)
    return review


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------- parts


def _phases(events: list[MissionEvent], mission: dict[str, Any], rel: Callable[[float], float],
            end: float) -> list[PhaseSpan]:
    titles = {str(p.get("id")): str(p.get("title", "")) for p in mission.get("phases", [])
              if isinstance(p, dict)}
    starts = [e for e in events if e.kind == "phase_started"]
    finish = next((e for e in events if e.kind == "mission_ended"), None)
    spans: list[PhaseSpan] = []
    for index, event in enumerate(starts):
        stop = starts[index + 1].t if index + 1 < len(starts) else (
            finish.t if finish else None)
        title = titles.get(event.name) or event.text.split(". ")[0]
        spans.append(PhaseSpan(event.name, title, rel(event.t),
                               rel(stop) if stop is not None else end, event.mission_time,
                               getattr(event, "reason", "")))
    return spans


class _Turn:
    """The messages of one turn, as they are met in the log."""

    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.first: float | None = None
        self.ended: SpeechEnded | None = None
        self.started: SpeechStarted | None = None
        self.finals: list[Transcript] = []
        self.decision: TwinDecision | None = None
        self.sentences: list[TwinUtterance] = []
        self.speech: Speech | None = None
        self.cut: SpeechCut | None = None
        self.emotion: EmotionEstimate | None = None
        self.went_on: int | None = None  # the turn the operator went on with this one in


def _turns(messages: list[Message], rel: Callable[[float], float]) -> list[TurnRow]:
    by_turn: dict[int, _Turn] = {}
    for m in messages:
        if m.turn is None:
            continue
        turn = by_turn.setdefault(m.turn, _Turn(m.turn))
        turn.first = m.t if turn.first is None else min(turn.first, m.t)
        if isinstance(m, SpeechEnded) and turn.ended is None:
            turn.ended = m
        elif isinstance(m, SpeechStarted) and turn.started is None:
            turn.started = m
        elif isinstance(m, Transcript) and m.final:
            turn.finals.append(m)
        elif isinstance(m, TwinDecision) and turn.decision is None:
            turn.decision = m
        elif isinstance(m, TwinUtterance):
            turn.sentences.append(m)
        elif isinstance(m, Speech) and turn.speech is None:
            turn.speech = m
        elif isinstance(m, SpeechCut):
            turn.cut = m
        elif isinstance(m, EmotionEstimate):
            turn.emotion = m
    for turn in by_turn.values():
        before = turn.started.continues if turn.started is not None else None
        if before is not None and before in by_turn:
            by_turn[before].went_on = turn.turn
    rows = []
    for turn in sorted(by_turn.values(), key=lambda x: (x.first or 0.0, x.turn)):
        if not (turn.finals or turn.decision or turn.sentences):
            continue  # speech that never became words (a cough), or a stray message
        rows.append(_turn_row(turn, rel))
    return rows


def _turn_row(turn: _Turn, rel: Callable[[float], float]) -> TurnRow:
    decision = turn.decision
    kind = "operator" if turn.finals or (decision and decision.trigger == "question") else "report"
    row = TurnRow(turn=turn.turn, kind=kind, start=rel(turn.first or 0.0))
    if turn.finals:
        row.operator_text = " ".join(t.text.strip() for t in turn.finals).strip()
        row.transcript_confidence = round(turn.finals[-1].confidence, 3)
    if turn.ended is not None:
        row.speech_duration = round(turn.ended.duration, 2)
    if decision is not None:
        row.trigger, row.intent, row.style = decision.trigger, decision.intent, decision.style
        row.hedge, row.confidence = decision.hedge, round(decision.confidence, 3)
        row.question, row.reasons = decision.question, list(decision.reasons)
        row.evidence = [Evidence(e.id, e.source, round(e.score, 3), e.text)
                        for e in decision.evidence]
    elif turn.sentences:
        row.intent = turn.sentences[0].intent
        row.confidence = round(turn.sentences[0].confidence, 3)
    sentences = sorted(turn.sentences, key=lambda s: (s.t, s.index))
    row.reply = " ".join(s.text.strip() for s in sentences).strip()
    row.sentences = len(sentences)
    lost = turn.ended is not None and turn.ended.lost
    if lost:
        row.cut = "the speech recogniser crashed during this turn: its words were lost"
    elif turn.cut is not None:
        row.cut = f"interrupted ({turn.cut.reason}) after: {turn.cut.spoken_text!r}"
    elif turn.went_on is not None:
        row.cut = f"the operator went on with it in turn {turn.went_on}: its reply withdrawn"
    if turn.emotion is not None:
        row.emotion = turn.emotion.label
    # stage times: end of voice -> end of turn decided -> final transcript -> decision -> first
    # sentence -> first audio
    marks = [  # (a turn closed after a crash has no voice end to count from)
        turn.ended.anchor if turn.ended and not lost else None,
        turn.ended.t if turn.ended else None,
        turn.finals[0].t if turn.finals else None,
        decision.t if decision else None,
        sentences[0].t if sentences else None,
        turn.speech.t if turn.speech else None,
    ]
    for stage, (a, b) in zip(STAGES, itertools.pairwise(marks), strict=True):
        if a is not None and b is not None:
            row.latency[stage] = round(max(0.0, b - a), 3)
    if marks[0] is not None and marks[-1] is not None:
        row.latency["total"] = round(max(0.0, marks[-1] - marks[0]), 3)
    return row


def _top(probabilities: dict[str, float]) -> str:
    return max(probabilities, key=lambda k: probabilities[k]) if probabilities else ""


def _affect(messages: list[Message], rel: Callable[[float], float]) -> list[AffectRow]:
    rows: list[AffectRow] = []
    for m in messages:
        if isinstance(m, EmotionEstimate):
            views = [ModalityView(v.modality, _top(v.probabilities), v.valence, v.arousal,
                                  v.confidence, v.weight, v.available) for v in m.modalities]
            rows.append(AffectRow(rel(m.t), m.turn, "estimate", m.label, m.valence, m.arousal,
                                  m.confidence, views))
        elif isinstance(m, OperatorState):
            rows.append(AffectRow(
                rel(m.t), m.turn, "state", m.label, m.valence, m.arousal, m.confidence,
                trend=m.trend, shift=m.shift or "", workload=m.workload,
                stress=getattr(m, "stress", None), engagement=getattr(m, "engagement", None),
                shift_turn=getattr(m, "shift_turn", None),
                shift_utterance=getattr(m, "shift_utterance", ""),
                shift_twin_before=getattr(m, "shift_twin_utterance", "")))
    return rows


def _shifts(affect: list[AffectRow], turns: list[TurnRow]) -> list[ShiftRow]:
    operator_turns = [t for t in turns if t.kind == "operator"]
    shifts = []
    for row in affect:
        if row.kind != "state" or not row.shift:
            continue
        turn = row.shift_turn if row.shift_turn is not None else row.turn
        index = next((i for i, t in enumerate(operator_turns) if t.turn == turn), None)
        if index is None:  # no turn on the state: the last operator turn before it
            earlier = [i for i, t in enumerate(operator_turns) if t.start <= row.t]
            index = earlier[-1] if earlier else None
        said = operator_turns[index] if index is not None else None
        before = operator_turns[index - 1].operator_text if index else ""
        words = row.shift_utterance or (said.operator_text if said else "")
        shifts.append(ShiftRow(row.t, turn, row.shift, row.valence, row.arousal, before, words,
                               said.reply if said else "", row.shift_twin_before))
    return shifts


def _objectives(events: list[MissionEvent], mission: dict[str, Any],
                rel: Callable[[float], float]) -> list[ObjectiveRow]:
    met = {e.name: e for e in events if e.kind == "objective_met"}
    rows = []
    for item in mission.get("objectives", []):
        if not isinstance(item, dict) or "id" not in item:
            continue
        event = met.pop(str(item["id"]), None)
        rows.append(ObjectiveRow(str(item["id"]), str(item.get("text", "")),
                                 str(item.get("phase") or ""), event is not None,
                                 rel(event.t) if event else None,
                                 event.mission_time if event else None,
                                 getattr(event, "reason", "") if event else ""))
    for name, event in met.items():  # met, but not in the mission held by the log
        rows.append(ObjectiveRow(name, event.text, "", True, rel(event.t), event.mission_time,
                                 getattr(event, "reason", "")))
    return rows


def clock(seconds: float) -> str:
    """``M:SS`` (or ``-M:SS``) for session seconds."""
    sign = "-" if seconds < 0 else ""
    whole = round(abs(seconds))
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def _moments(review: SessionReview) -> list[str]:
    moments: list[str] = []

    def at(t: float, text: str) -> None:
        moments.append(f"{clock(t)}  {text}")

    for event in review.events:
        if event.kind == "inject" and event.priority != "routine":
            at(event.t, f"{event.priority} inject [{event.name}]: {_short(event.text)}")
        elif event.kind == "inject" and event.reason:
            at(event.t, f"inject [{event.name}] because {event.reason}")
        elif event.kind == "objective_met":
            at(event.t, f"objective met [{event.name}]" + (
                f" ({event.reason})" if event.reason else ""))
        elif event.kind == "phase_started" and event.reason:
            at(event.t, f"phase [{event.name}] started: {event.reason}")
        elif event.kind in ("paused", "resumed"):
            at(event.t, f"mission {event.kind} by the trainer")
    for shift in review.shifts:
        at(shift.t, f"emotion shift {shift.shift} after: {_short(shift.said) or '(no words)'}")
    for turn in review.turns:
        if turn.cut:
            at(turn.start, f"the operator interrupted the twin (turn {turn.turn})")
        if turn.hedge or (turn.confidence is not None and turn.confidence < LOW_CONFIDENCE
                          and turn.kind == "operator"):
            at(turn.start, f"the twin was unsure (confidence {turn.confidence:.2f}) about: "
                           f"{_short(turn.operator_text or turn.question)}")
    for error in review.errors:
        at(error.t, f"actor {error.actor}: {_short(error.error)}"
                    + (f" -> {error.action}" if error.action != "none" else ""))
    moments.sort(key=_moment_time)
    totals = [t.latency["total"] for t in review.turns if "total" in t.latency]
    if totals:
        slowest = max((t for t in review.turns if "total" in t.latency),
                      key=lambda t: t.latency["total"])
        moments.append(f"the twin answered {len(totals)} operator turns; end of the operator's "
                       f"voice to first audio: median {statistics.median(totals):.2f} s, slowest "
                       f"{slowest.latency['total']:.2f} s (turn {slowest.turn})")
    met = sum(o.met for o in review.objectives)
    if review.objectives:
        moments.append(f"objectives met: {met} of {len(review.objectives)}")
    moments.append("the mission ended: " + review.end_reason if review.ended
                   else "the log ends before the mission ended")
    return moments


def _moment_time(text: str) -> float:
    stamp = text.split()[0]
    sign = -1 if stamp.startswith("-") else 1
    minutes, _, seconds = stamp.lstrip("-").partition(":")
    return sign * (int(minutes) * 60 + int(seconds))


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
