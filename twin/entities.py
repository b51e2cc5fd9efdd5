"""The values an operator says on the radio, found in what the recogniser heard and written the
way the mission writes them: grid references, frequencies and callsigns.

Whisper writes "four nine three zero seven one zero two" as ``49307102`` and "BULLDOG two" as
"Bulldog 2" or even "bull vog two". :class:`MissionValues` learns the mission's own forms from
its texts (the mission file and its notes): which grids, frequencies and callsigns it holds and
how they are written. :meth:`MissionValues.find` then finds, in a transcript, the spans that say
one of them (or something of the same shape: a grid of the mission's length that is not in the
notes) and gives each as an :class:`~twin.messages.Entity` with the form the mission uses, where
it is in the text and how sure the recogniser was of its words. :func:`with_entities` writes
them into the text, for the mind to match against the notes.

Nothing here names a mission's values: they all come from the mission's texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from twin.messages import Entity, Word

if TYPE_CHECKING:
    from twin.config import Mission

__all__ = ["MissionValues", "with_entities"]

_DIGITS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "niner": "9"}
_NUMBER = r"(?:\d+|zero|oh|one|two|three|four|five|six|seven|eight|nine|niner)"
# in the mission's texts: "33T VM 4930 7102", "SO 4417 2863" or "4930 7102" (halves of equal
# length)
_GRID_RE = re.compile(r"\b(?:(\d{1,2}[A-Z]) )?(?:([A-Z]{2}) )?(\d{3,5}) (\d{3,5})\b")
_FREQUENCY_RE = re.compile(r"\b(\d{2,3})\.(\d{1,3}) ?MHz\b", re.IGNORECASE)
_CALLSIGN_RE = re.compile(r"\b([A-Z]{3,}) (\d{1,2}[A-Z]?)\b")
# in a transcript: digits said one by one or as figures, with spaces, commas or hyphens between
_DIGIT_RUN_RE = re.compile(rf"\b{_NUMBER}(?:[\s,-]+{_NUMBER})*\b", re.IGNORECASE)
_SPOKEN_FREQUENCY_RE = re.compile(
    rf"\b({_NUMBER}(?:[\s-]+{_NUMBER}){{0,2}})\s*(?:\.|\s(?:decimal|point)\s)\s*"
    rf"({_NUMBER}(?:[\s-]+{_NUMBER}){{0,2}})\b(\s*(?:MHz|megahertz)\b)?", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[A-Za-z]+|\d+[A-Za-z]?")
# how alike a heard word (or two joined) must be to a callsign's name: "bull vog" ~ "BULLDOG"
_NAME_LIKENESS = 0.8  # ("mile" ~ "MULE" is 0.75: not enough)


def _digits(text: str) -> str:
    """The digits ``text`` says, figures and digit words alike ("4 nine-3" -> "493")."""
    out = []
    for token in re.findall(r"\d+|[a-z]+", text.lower()):
        out.append(token if token.isdigit() else _DIGITS.get(token, ""))
    return "".join(out)


@dataclass
class MissionValues:
    """The grids, frequencies and callsigns of one mission, as its texts write them."""

    grids: dict[str, str] = field(default_factory=dict)  # digits -> as written
    grid_halves: set[int] = field(default_factory=set)  # digits in each half of a grid
    frequencies: dict[str, str] = field(default_factory=dict)  # "46.9" -> "46.900"
    callsigns: dict[str, set[str]] = field(default_factory=dict)  # "BULLDOG" -> {"2", "0A"}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> MissionValues:
        values = cls()
        for text in texts:
            for zone, square, east, north in _GRID_RE.findall(text):
                if len(east) != len(north):
                    continue  # halves of unequal length: not a grid
                written = " ".join(part for part in (zone, square, east, north) if part)
                values.grids.setdefault(east + north, written)
                values.grid_halves.add(len(east))
            for whole, fraction in _FREQUENCY_RE.findall(text):
                values.frequencies.setdefault(_frequency_key(whole, fraction),
                                              f"{whole}.{fraction}")
            for name, number in _CALLSIGN_RE.findall(text):
                values.callsigns.setdefault(name, set()).add(number)
        return values

    @classmethod
    def from_mission(cls, mission: Mission) -> MissionValues:
        """From the mission file (all but its scripted operator lines) and its notes."""
        from twin.prompt import read_notes

        notes = [text for _, text in read_notes(mission.knowledge)]
        return cls.from_texts([mission.model_dump_json(exclude={"script"}), *notes])

    def find(self, text: str, words: Sequence[Word] = ()) -> list[Entity]:
        """The values ``text`` says, in order, none overlapping: frequencies, then grids, then
        callsigns. ``words`` (the recogniser's, in order) give each its confidence."""
        found: list[Entity] = []

        def free(start: int, end: int) -> bool:
            return all(end <= e.start or start >= e.end for e in found)

        for match in _SPOKEN_FREQUENCY_RE.finditer(text):
            whole, fraction = _digits(match.group(1)), _digits(match.group(2))
            known = self.frequencies.get(_frequency_key(whole, fraction))
            # one the mission does not hold only where it is said to be one ("... MHz")
            if whole and fraction and (known or match.group(3)):
                found.append(self._entity("frequency", known or f"{whole}.{fraction}", text,
                                          match.start(), match.end(2), words, known is not None))
        for match in _DIGIT_RUN_RE.finditer(text):
            digits = _digits(match.group(0))
            if not free(match.start(), match.end()) or len(digits) < 6 or len(digits) % 2:
                continue
            known = self.grids.get(digits)
            half = len(digits) // 2
            if known or half in self.grid_halves:
                found.append(self._entity("grid", known or f"{digits[:half]} {digits[half:]}",
                                          text, match.start(), match.end(), words,
                                          known is not None))
        for entity in self._callsigns(text, words):
            if free(entity.start, entity.end):
                found.append(entity)
        return sorted(found, key=lambda e: e.start)

    def _callsigns(self, text: str, words: Sequence[Word]) -> list[Entity]:
        """A callsign's name heard as one or two words like it, then its number."""
        tokens = list(_TOKEN_RE.finditer(text))
        found = []
        for i, token in enumerate(tokens):
            for size in (1, 2):  # "Bulldog", "bull vog"
                if i + size >= len(tokens):
                    break
                heard = "".join(t.group(0) for t in tokens[i:i + size]).upper()
                name = max(self.callsigns, key=lambda n: _likeness(heard, n), default=None)
                number_token = tokens[i + size]
                number = _callsign_number(number_token.group(0))
                if name is None or number is None or _likeness(heard, name) < _NAME_LIKENESS:
                    continue
                if size == 2 and max(_likeness(t.group(0).upper(), name)
                                     for t in tokens[i:i + 2]) >= _likeness(heard, name):
                    continue  # one of the two alone is as like it: "the Bulldog"
                written = f"{name} {number}"
                found.append(self._entity("callsign", written, text, token.start(),
                                          number_token.end(), words,
                                          number in self.callsigns[name]))
                break
        return found

    @staticmethod
    def _entity(kind: str, value: str, text: str, start: int, end: int,
                words: Sequence[Word], known: bool) -> Entity:
        return Entity(kind=kind, text=value, heard=text[start:end], start=start, end=end,
                      confidence=_confidence(text, start, end, words), known=known)


def _frequency_key(whole: str, fraction: str) -> str:
    """One spelling per frequency: "46.900" and "46.9" are one ("four six decimal nine")."""
    return f"{whole}.{fraction.rstrip('0')}"


def _likeness(heard: str, name: str) -> float:
    return SequenceMatcher(None, heard, name).ratio()


def _callsign_number(token: str) -> str | None:
    """A callsign's number as written: "2", "0A"; a digit word as its figure."""
    if re.fullmatch(r"\d{1,2}[A-Za-z]?", token):
        return token.upper()
    return _DIGITS.get(token.lower()) if token.lower() != "o" else None


def _confidence(text: str, start: int, end: int, words: Sequence[Word]) -> float:
    """The lowest probability of the recogniser's words inside ``text[start:end]`` (the words
    are matched to the text in order); 1.0 with no words (typed text)."""
    if not words:
        return 1.0
    probabilities = []
    position = 0
    for word in words:
        at = text.find(word.word.strip(), position)
        if at < 0:
            continue
        position = at + len(word.word.strip())
        if at < end and position > start:
            probabilities.append(word.probability)
    return round(min(probabilities), 3) if probabilities else 1.0


def with_entities(text: str, entities: Sequence[Entity]) -> str:
    """``text`` with each entity's span written as the mission writes it."""
    for entity in sorted(entities, key=lambda e: e.start, reverse=True):
        text = text[:entity.start] + entity.text + text[entity.end:]
    return text
