"""``twin eval dialogue``: score the twin's answers on a question file, with the real model.

A question file (YAML, or TSV with a header row) lists questions in the order they are asked, in
one conversation::

    mission: route_clearance.yaml      # optional (YAML only): the mission, beside this file
    questions:
      - question: What frequency is the troop net on?
        kind: fact                     # fact | compound | recommend | unknown
        after: [met-forecast]          # injects that happen before it (optional)
        facts: ["44.175"]              # each must be in the reply; "A | B": either
        not: ["46.900"]                # none may be in the reply (optional)

TSV columns: ``question, kind, facts, not, after`` (lists separated by ``;``).

A question passes when its reply holds every fact and none of the ``not`` values and states no
value that nothing in the mission holds; an ``unknown`` question passes when the reply hedges
(says the notes do not hold it, or that the twin is not sure) and states no such value. The
comparison writes spelled-out numbers as figures and ignores case, so "two hundred metres" holds
"200". Invented values are counted against the mission file, its notes and the questions, by the
same value checker the twin uses (``twin.grounding``), built here independently of the twin.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from twin.config import ConfigError, Mission, load_mission
from twin.grounding import Grounds, figures, ordinary_words

__all__ = ["KINDS", "EvalError", "Question", "Result", "evaluate", "format_results",
           "load_questions", "summary"]

Kind = Literal["fact", "compound", "recommend", "unknown"]
KINDS: tuple[Kind, ...] = ("fact", "compound", "recommend", "unknown")
HEDGE = re.compile(
    r"\b(do not|don't|does not|doesn't) (have|hold|know|say)\b|\bnot in the (mission )?notes\b|"
    r"\bnot (certain|sure)\b|\bunsure\b|\bno information\b|\bcannot confirm\b|\bunknown\b",
    re.IGNORECASE)


class EvalError(ValueError):
    """A question file that cannot be used: names the file, the question and the field."""


@dataclass(frozen=True)
class Question:
    """One question of a question file."""

    number: int
    text: str
    kind: Kind
    facts: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass
class Result:
    """The twin's answer to one question, and the verdict."""

    question: Question
    passed: bool
    why: str
    reply: str
    intent: str
    hedge: bool
    confidence: float
    first_sentence_ms: float | None
    reports: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        q = self.question
        return {"number": q.number, "question": q.text, "kind": q.kind, "passed": self.passed,
                "why": self.why, "reply": self.reply, "intent": self.intent,
                "hedge": self.hedge, "confidence": round(self.confidence, 3),
                "first_sentence_ms": self.first_sentence_ms, "facts": list(q.facts),
                "not": list(q.must_not), "after": list(q.after), "reports": self.reports,
                "held_back": self.held_back}


# ------------------------------------------------------------------------------ reading

def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in re.split(r"\s*;\s*", value) if part]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise EvalError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(str(v).strip() for v in value if str(v).strip())


def _question(row: dict[str, Any], number: int, where: str) -> Question:
    unknown = set(row) - {"question", "kind", "facts", "not", "after", "operator"}
    if unknown:
        raise EvalError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                        "(fields: question, kind, facts, not, after, operator)")
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise EvalError(f"{where}, field 'question': a non-empty question is required")
    kind = str(row.get("kind", "")).strip()
    if kind not in KINDS:
        raise EvalError(f"{where}, field 'kind': {kind!r} is not one of {', '.join(KINDS)}")
    facts = _strings(row.get("facts"), f"{where}, field 'facts'")
    if kind != "unknown" and not facts:
        raise EvalError(f"{where}, field 'facts': a {kind} question needs the facts its answer "
                        "must hold")
    return Question(number, " ".join(text.split()), kind, facts,
                    _strings(row.get("not"), f"{where}, field 'not'"),
                    _strings(row.get("after"), f"{where}, field 'after'"))


def load_questions(path: Path) -> tuple[list[Question], Path | None]:
    """The questions of a YAML or TSV file, and the mission the YAML names (if any)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EvalError(f"{path}: cannot read: {error.strerror or error}") from None
    mission: Path | None = None
    if path.suffix.lower() in (".tsv", ".tab"):
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
        if not rows or "question" not in rows[0] or "kind" not in rows[0]:
            raise EvalError(f"{path}: a TSV question file needs a header row with at least "
                            "'question' and 'kind'")
        entries: list[Any] = [{k: v for k, v in row.items() if k and v not in (None, "")}
                              for row in rows]
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise EvalError(f"{path}: not valid YAML: {error}") from None
        if isinstance(data, dict):
            if data.get("mission"):
                mission = (path.parent / str(data["mission"])).resolve()
            entries = data.get("questions") or []
        else:
            entries = data or []
        if not isinstance(entries, list):
            raise EvalError(f"{path}, field 'questions': expected a list of questions")
    questions = []
    for number, row in enumerate(entries, 1):
        where = f"{path}, question {number}"
        if not isinstance(row, dict):
            raise EvalError(f"{where}: expected a mapping with question, kind, facts")
        questions.append(_question(row, number, where))
    if not questions:
        raise EvalError(f"{path}: no questions")
    return questions, mission


def check_against(mission: Mission, questions: list[Question], path: Path) -> None:
    """Every ``after`` names an inject of the mission."""
    injects = {inject.id for inject in mission.injects}
    for question in questions:
        for name in question.after:
            if name not in injects:
                raise EvalError(f"{path}, question {question.number}, field 'after': no inject "
                                f"{name!r} in mission {mission.name!r} "
                                f"(injects: {', '.join(sorted(injects)) or 'none'})")


# ------------------------------------------------------------------------------ scoring

def _normal(text: str) -> str:
    text = figures(text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    # no trailing decimal zeros, as twin.grounding: "46.900" is "46.9", "9.0" is "9"
    text = re.sub(r"(\d)\.(\d*?)0+\b", lambda m: m[1] + (f".{m[2]}" if m[2] else ""), text)
    return " ".join(re.sub(r"[^\w.%/+-]+", " ", text).split())


# After a fact: no more digits ("200" is not in "2000", "46.9" not in "46.95").
_NUMBER_END = r"(?!\.?\d)"


def _holds(reply: str, fact: str) -> bool:
    normal = _normal(reply)
    squeezed = normal.replace(" ", "")
    for alternative in fact.split("|"):
        wanted = _normal(alternative)
        if wanted and (
                re.search(rf"(?<![\w.]){re.escape(wanted)}{_NUMBER_END}", normal)
                or re.search(rf"(?<![\d.]){re.escape(wanted.replace(' ', ''))}{_NUMBER_END}",
                             squeezed)):
            return True
    return False


def verdict(question: Question, reply: str, grounds: Grounds) -> tuple[bool, str]:
    """(passed, why) for one reply."""
    invented = [problem for sentence in re.split(r"(?<=[.!?])\s+", reply)
                if (problem := grounds.check(sentence))]
    if invented:
        return False, "invented: " + "; ".join(invented)
    if question.kind == "unknown":
        return (True, "hedged") if HEDGE.search(reply) else (False, "answered, not hedged")
    missing = [fact for fact in question.facts if not _holds(reply, fact)]
    wrong = [value for value in question.must_not if _holds(reply, value)]
    if missing or wrong:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"says {', '.join(wrong)}"] if wrong else [])
        return False, "; ".join(parts)
    return True, "all facts"


def _mission_grounds(mission_path: Path, mission: Mission, questions: list[Question]) -> Grounds:
    texts = [mission_path.read_text(encoding="utf-8"),
             *(Path(note).read_text(encoding="utf-8") for note in mission.knowledge),
             *(question.text for question in questions)]
    return Grounds(texts, common_words=ordinary_words())


# ------------------------------------------------------------------------------ running

def evaluate(mission_path: Path, questions: list[Question], settings: dict[str, Any], *,
             spoken: bool = True, progress: Callable[[str], None] = lambda text: None
             ) -> tuple[list[Result], float]:
    """Ask every question in order through the Dialogue actor; (results, ready seconds).
    ``spoken``: each question arrives as in a session, in the time an operator takes to say it
    (the twin reads ahead meanwhile), and its first sentence is timed from the final transcript,
    sent as their voice ends; else typed, all at once."""
    from twin.conversation import Talk

    try:
        mission = load_mission(mission_path)
    except ConfigError as error:
        raise EvalError(str(error)) from None
    check_against(mission, questions, mission_path)
    grounds = _mission_grounds(mission_path, mission, questions)
    results: list[Result] = []

    async def run() -> float:
        progress(f"loading the model and reading mission {mission.name!r} ...")
        async with Talk(mission, settings, spoken=spoken) as talk:
            progress(f"ready in {talk.ready_s or 0:.1f} s; {len(questions)} questions")
            for question in questions:
                reports = []
                for name in question.after:
                    if name not in talk.happened:
                        reports += [x.reply for x in await talk.inject(name)]
                exchange = await talk.ask(question.text)
                passed, why = verdict(question, exchange.reply, grounds)
                decision = exchange.decision
                results.append(Result(question, passed, why, exchange.reply, decision.intent,
                                      decision.hedge, decision.confidence,
                                      exchange.first_sentence_ms, reports,
                                      exchange.rejected))
                progress(f"{question.number:3d} {question.kind:9} "
                         f"{'pass' if passed else 'FAIL'}  {question.text[:60]}")
            return talk.ready_s or 0.0

    ready = asyncio.run(run())
    return results, ready


def summary(results: list[Result], ready_s: float = 0.0) -> dict[str, Any]:
    """``total: {passed, questions}``, ``by_kind`` the same per kind, the first-sentence times
    and ``questions`` (one row each)."""
    def score(rows: list[Result]) -> dict[str, int]:
        return {"passed": sum(r.passed for r in rows), "questions": len(rows)}

    times = [r.first_sentence_ms for r in results if r.first_sentence_ms is not None]
    invented = sum(r.why.startswith("invented") for r in results)
    return {
        "total": score(results),
        "by_kind": {kind: score([r for r in results if r.question.kind == kind])
                    for kind in KINDS if any(r.question.kind == kind for r in results)},
        "invented_values": invented,
        "first_sentence_ms": {"p50": round(statistics.median(times), 1),
                              "max": round(max(times), 1)} if times else {},
        "ready_s": round(ready_s, 1),
        "questions": [r.to_dict() for r in results],
    }


def format_results(results: list[Result], ready_s: float = 0.0) -> str:
    """A readable report: each question with its decision, reply and verdict, then the scores."""
    lines = []
    for r in results:
        q = r.question
        first = f"{r.first_sentence_ms:.0f} ms" if r.first_sentence_ms is not None else "-"
        lines.append(f"{q.number:3d}. [{q.kind}] {q.text}")
        for report in r.reports:
            lines.append(f"     (report) {report}")
        lines.append(f"     decision: {r.intent}{', hedge' if r.hedge else ''}, confidence "
                     f"{r.confidence:.2f}; first sentence {first}")
        lines.append(f"     twin: {r.reply}")
        for held in r.held_back:
            lines.append(f"     held back: {held}")
        lines.append(f"     {'PASS' if r.passed else 'FAIL'}: {r.why}")
    data = summary(results, ready_s)
    total = data["total"]
    lines.append("")
    lines.append(f"total: {total['passed']}/{total['questions']} passed "
                 f"({100 * total['passed'] / max(1, total['questions']):.0f} %); invented values "
                 f"in {data['invented_values']} replies")
    for kind, row in data["by_kind"].items():
        lines.append(f"  {kind:9} {row['passed']}/{row['questions']}")
    if data["first_sentence_ms"]:
        lines.append(f"first sentence after the question: p50 {data['first_sentence_ms']['p50']}"
                     f" ms, max {data['first_sentence_ms']['max']} ms; the model read the "
                     f"mission in {ready_s:.1f} s")
    return "\n".join(lines)


def to_json(results: list[Result], ready_s: float = 0.0) -> str:
    return json.dumps(summary(results, ready_s), indent=2)
