"""The model's prompt: a long prefix that stays identical all session, then the conversation.

llama.cpp keeps the state of the longest prompt prefix it has already read, so the prompt is laid
out for that (ARCHITECTURE.md, "The metacognitive context"):

1. the **prefix** (:func:`mission_prefix`, the system message): who the twin is, how it answers,
   who it works with (the operator's roster entry), the mission file's standing facts (setting,
   briefing, roster, phases, objectives — never the injects to come) and the whole mission
   knowledge when it fits the model's context (else the per-turn part carries the best passages);
2. the **conversation** (:class:`Conversation`): every turn so far, the twin's own reports
   included, each as the turn's message and what the twin actually said — append-only, so each
   new turn extends the previous prompt and the model reads only the new tokens;
3. the **turn**: the message for this decision (built by ``twin.mind.Mind``): recent events with
   their facts, the operator's state, the policy's decision and the question.

Nothing in the prefix depends on the turn; ``tests/unit/test_prompt.py`` holds the layout to that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from twin.config import Mission, Operator

__all__ = ["NOT_IN_NOTES", "Conversation", "mission_prefix", "read_notes"]

NOT_IN_NOTES = "I do not have that in the mission notes."
"""What the model is told to say when nothing it was given holds the answer."""

_RULES = f"""How you answer:
- Use only what is written below (the mission and its notes), the mission events you are told \
about during the conversation, and what the operator says. Never guess.
- Answer the question that was asked, in plain sentences to be spoken on the radio: no lists, \
no headings, no markdown, no greetings. Start with the bottom line in a short first sentence \
of a few words (the value, yes or no, the action), then the rest. Never read out a whole \
table: give the figures that answer the question.
- Quote numbers, grids, times, frequencies, callsigns and names exactly as they are written.
- When the notes give a drill, procedure or limit for the situation, apply it to the situation \
and say what it means.
- If the notes and events do not hold the answer, say exactly: "{NOT_IN_NOTES}" and nothing \
else. Do not offer a value from something else instead.
- Never repeat an earlier reply word for word: answer the new question.
- Each operator message starts with the mission phase and time, as in [phase: Patrol; \
T+01:20], and ends with how to reply, in brackets, as in [answer, brief]. [answer]: answer the \
question. \
[recommend]: say what to do, applying the notes' drill, procedure or limits to the situation, \
and why; with "options first", give the options, then your recommendation. [report to X]: tell \
X about the new event: what happened and, where the facts say so, what it means for us. \
[first question only]: answer only the first of their questions; they ask the next \
after your answer. [acknowledge]: a few words. [clarify]: ask them to say again. \
Length: [brief] one or two short sentences; [standard] two or three; [explain] up to four, \
bottom line first, then the reasons. \
"Operator under stress": keep it short and calm."""


def read_notes(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """(name, text) of each knowledge note, in the mission's order."""
    return [(Path(path).stem, Path(path).read_text(encoding="utf-8").strip()) for path in paths]


def _member(member: Operator) -> str:
    line = f"- {member.callsign}, {member.name}: {member.role} ({member.expertise})"
    return line + (f"; prefers: {'; '.join(member.preferences)}" if member.preferences else "")


def mission_prefix(mission: Mission, operator: Operator,
                   notes: Sequence[tuple[str, str]] | None) -> str:
    """The system message: persona, rules, the operator, the mission's standing facts and
    (``notes`` given) the whole knowledge. Depends on nothing that changes during a session."""
    persona = mission.persona
    objectives = {o.id: o.text for o in mission.objectives}
    parts = [
        f"You are {persona.name} (callsign {persona.callsign}), a digital teammate on this "
        f"mission: {persona.style.strip()}.",
        f"You work with {operator.callsign}, {operator.name}, {operator.role} "
        f"({operator.expertise})."
        + (f" They prefer: {'; '.join(operator.preferences)}." if operator.preferences else ""),
        _RULES,
        f"MISSION: {mission.title}",
        f"Setting: {' '.join(mission.setting.split())}",
        f"Briefing: {' '.join(mission.briefing.split())}",
        "Team:\n" + "\n".join(_member(member) for member in mission.roster),
        "Phases:\n" + "\n".join(
            f"{n}. {phase.title}: {' '.join(phase.briefing.split())}"
            + (f" Objectives: {'; '.join(objectives.get(o, o) for o in phase.objectives)}."
               if phase.objectives else "")
            for n, phase in enumerate(mission.phases, 1)),
    ]
    if notes:
        parts.append("MISSION NOTES\n\n" + "\n\n".join(f"=== {name} ===\n{text}"
                                                     for name, text in notes))
    return "\n\n".join(parts)


@dataclass
class Conversation:
    """The turns so far, oldest first, as (turn message, what the twin said): append-only, so
    that each prompt extends the one before. Past ``max_chars`` the oldest half is dropped at
    once (one re-read of the rest, rather than one at every turn)."""

    max_chars: int = 12_000
    turns: list[tuple[str, str]] = field(default_factory=list)

    def add(self, asked: str, said: str) -> None:
        self.turns.append((asked, said.strip() or "(said nothing)"))
        if self.size() > self.max_chars:
            while self.turns and self.size() > self.max_chars // 2:
                self.turns.pop(0)

    def size(self) -> int:
        return sum(len(asked) + len(said) for asked, said in self.turns)

    def messages(self) -> list[tuple[str, str]]:
        return [message for asked, said in self.turns
                for message in (("human", asked), ("ai", said))]
