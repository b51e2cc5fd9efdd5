"""The values an operator says on the radio, found in what the recogniser heard and written the
way the mission writes them: grid references, frequencies, callsigns and times.

Whisper writes "four nine three zero seven one zero two" as ``49307102``, "BULLDOG two" as
"Bulldog 2" or even "bull vog two", "BULLDOG zero alpha" as "Bulldog 0 Alpha" and "fifteen
hundred" as "1500", "15:00", "1,500" or "fifteen hundred". :class:`MissionValues` learns the
mission's own forms from its texts (the mission file and its notes): which grids, frequencies,
callsigns and times it holds and how they are written. :meth:`MissionValues.find` then finds,
in a transcript, the spans that say one of them (or something of the same shape: a grid of the
mission's length that is not in the notes) and gives each as an :class:`~twin.messages.Entity`
with the form the mission uses, where it is in the text and how sure the recogniser was of its
words. :func:`with_entities` writes them into the text, for the mind to match against the notes.

A time is taken only where something says it is one: a time word after it ("hours", "local",
"Z", "p.m."), a time cue before it ("at", "by", "until" ...), a form nothing else has ("06:45",
"0645", "oh six hundred") or the mission holding exactly that time; never with a unit after it
("fifteen hundred metres", "1,500 litres"). The phonetic alphabet gives a callsign's letter
("BULLDOG zero alpha" is BULLDOG 0A) and a grid's square letters ("Victor Mike 4930 7102"); a
word of it that is one of the mission's callsign names with a number after it ("HOTEL 1") stays a
callsign.

Nothing here names a mission's values: they all come from the mission's texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from twin.grounding import numbers, spelled_numbers
from twin.messages import Entity, Word

if TYPE_CHECKING:
    from twin.config import Mission

__all__ = ["MissionValues", "mission_texts", "with_entities"]

_DIGITS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "niner": "9"}
_NUMBER = r"(?:\d+|zero|oh|one|two|three|four|five|six|seven|eight|nine|niner)"
# in the mission's texts: "33T VM 4930 7102", "SO 4417 2863" or "4930 7102" (halves of equal
# length)
_GRID_RE = re.compile(r"\b(?:(\d{1,2}[A-Z]) )?(?:([A-Z]{2}) )?(\d{3,5}) (\d{3,5})\b")
_FREQUENCY_RE = re.compile(r"\b(\d{2,3})\.(\d{1,3}) ?MHz\b", re.IGNORECASE)
_CALLSIGN_RE = re.compile(r"\b([A-Z]{3,}) (\d{1,3}[A-Z]?)\b")  # "RESCUE 936"
# in a transcript: digits said one by one or as figures, with spaces, commas or hyphens between
_DIGIT_RUN_RE = re.compile(rf"\b{_NUMBER}(?:[\s,-]+{_NUMBER})*\b", re.IGNORECASE)
_SPOKEN_FREQUENCY_RE = re.compile(
    rf"\b({_NUMBER}(?:[\s-]+{_NUMBER}){{0,2}})\s*(?:\.|\s(?:decimal|point)\s)\s*"
    rf"({_NUMBER}(?:[\s-]+{_NUMBER}){{0,2}})\b(\s*(?:MHz|megahertz)\b)?", re.IGNORECASE)
# a number in figures (not part of a word such as "33T", a time "6:45" or a list "1,2")
_FIGURES_RE = re.compile(r"(?<![\w.,:])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w:]|[.,]\d)")
_PRONOUN_AFTER_RE = re.compile(r"\s*(?:of\b|'s\b|another\b)", re.IGNORECASE)
_PRONOUN_BEFORE_RE = re.compile(r"\b(?:the|that|this|which|each|every|any|no|some)\s+$",
                                re.IGNORECASE)
_TOKEN_RE = re.compile(r"[A-Za-z]+|\d+[A-Za-z]?")
# how alike a heard word (or two joined) must be to a callsign's name: "bull vog" ~ "BULLDOG"
_NAME_LIKENESS = 0.8  # ("mile" ~ "MULE" is 0.75: not enough)

# The phonetic alphabet: a callsign's letter ("BULLDOG zero alpha"), a grid's square letters.
_PHONETIC = {"alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D", "echo": "E",
             "foxtrot": "F", "golf": "G", "hotel": "H", "india": "I", "juliet": "J",
             "juliett": "J", "kilo": "K", "lima": "L", "mike": "M", "november": "N",
             "oscar": "O", "papa": "P", "quebec": "Q", "romeo": "R", "sierra": "S", "tango": "T",
             "uniform": "U", "victor": "V", "whiskey": "W", "whisky": "W", "xray": "X",
             "yankee": "Y", "zulu": "Z"}
_PHONETIC_WORD = rf"(?:x[\s-]?ray|{'|'.join(sorted(_PHONETIC, key=len, reverse=True))})"
_PHONETIC_AFTER_RE = re.compile(rf"[\s-]*({_PHONETIC_WORD})\b", re.IGNORECASE)
_WORD_AFTER_RE = re.compile(r"[\s-]+(\w+)")
# a grid's zone and square letters just before its figures: "33T VM", "VM", "Victor Mike",
# "three three Tango Victor Mike"
_GRID_LETTERS_RE = re.compile(
    rf"(?:\b(?P<zone_number>\d{{1,2}}|(?i:{_NUMBER}(?:[\s-]+{_NUMBER})?))[\s-]?"
    rf"(?P<zone_letter>[A-Z]|(?i:{_PHONETIC_WORD}))[\s,-]+)?"
    rf"\b(?:(?P<square>[A-Z]{{2}})|(?i:(?P<first>{_PHONETIC_WORD})[\s,-]+"
    rf"(?P<second>{_PHONETIC_WORD})))[\s,-]*$")
_WRITTEN_GRID_RE = re.compile(r"(?:(\d{1,2}[A-Z]) )?(?:([A-Z]{2}) )?\d")

# Times. A mission writes a time as four figures, "0645" or "1100 to 1500 local"; an operator
# says it "oh six forty-five", "fifteen hundred (hours)", "twelve fifty-two", and Whisper
# writes those "0645", "06:45", "6:45", "1500", "15:00", "1,500", "15 hundred", "fifteen
# hundred", "3 p.m.".
_FOUR_FIGURES = r"(?:[01]\d|2[0-3])[0-5]\d"  # 0000-2359
_MISSION_TIME_RE = re.compile(rf"\b{_FOUR_FIGURES}\b")
_MISSION_RANGE_RE = re.compile(
    rf"\b({_FOUR_FIGURES})\s*(?:-|\u2013|to|until|till|and)\s*({_FOUR_FIGURES})\b", re.IGNORECASE)
_CUES = "at|by|until|till|til|from|since|after|before|past|eta|etd"
_CUE_BEFORE_RE = re.compile(
    rf"\b(?:{_CUES})\s+(?:(?:about|around|approximately|roughly)\s+)?$", re.IGNORECASE)
_AT_BEFORE_RE = re.compile(r"\bat\s+$", re.IGNORECASE)  # "at 2000" is no year
# the mission's own texts also put times in lists and tables: "about 1100", "ETA 1130"
_MISSION_CUE_BEFORE_RE = re.compile(
    rf"\b(?:{_CUES}|about|around|approx|approximately|due|planned|sunset|sunrise)"
    r"\W{0,2}\s*$", re.IGNORECASE)
_TIME_WORD_AFTER_RE = re.compile(r"\s?(?:hours|hrs|hr|h|local|zulu|z|gmt|utc)\b", re.IGNORECASE)
# "p.m." (its last dot left out where it ends the sentence), "pm", "PM", "AM", "3am"; not "am"
_AMPM_AFTER_RE = re.compile(
    r"\s?(?:([aApP])\.\s?[mM]\b(?:\.(?!\s*(?:[A-Z]|$)))?|([pP])[mM]\b|(A)M\b|(?<=\d)(a)m\b)")
_OCLOCK_AFTER_RE = re.compile(r"\s+o'?\s?clock\b", re.IGNORECASE)
_UNITS = ("m|metres?|meters?|km|kilomet(?:re|er)s?|ft|feet|foot|yards?|yds?|miles?|nm|"
          "l|litres?|liters?|gallons?|kg|kilos?|kilograms?|tonnes?|tons?|lbs?|pounds?|"
          "dollars?|euros?|quid|people|persons?|casualties|men|troops|rounds|vehicles|trucks|"
          "sandbags|bags|boxes|hz|khz|mhz|megahertz|psi|bar|percent|degrees?|calories")
# a unit after a time-like number, or after a range it starts ("1500 to 2000 metres")
_UNIT_AFTER_RE = re.compile(
    rf"(?:\s*(?:-|\u2013|to|and)\s*[\w,.:]+(?:\s+hundred)?)?\s*(?:(?:{_UNITS})\b|%)", re.IGNORECASE)
_ONES = "one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_ZERO = "zero|oh|o"
_NUMBER_WORD = rf"(?:zero|oh|{_TEENS}|{_ONES}|niner|twenty|thirty|forty|fifty|hundred|thousand)"
_NUMBER_BEFORE_RE = re.compile(rf"(?:\d|\b{_NUMBER_WORD})\s+$", re.IGNORECASE)
_NUMBER_AFTER_RE = re.compile(rf"(?:\s+and)?\s+(?:\d|{_NUMBER_WORD}\b)", re.IGNORECASE)
_FIGURE_TIME_RE = re.compile(
    r"(?<![\w.,:])(?:"
    r"(?P<colon_h>\d{1,2}):(?P<colon_m>\d{2})(?![.,:]?\d)"  # 15:00, 6:45
    r"|(?P<dot_h>\d{1,2})\.(?P<dot_m>\d{2})(?![.,:]?\d)"  # 12.52
    r"|(?P<figures>\d{4})(?=(?:z|h|hrs|l)?\b)(?![.,:]\d)"  # 1500, 0645, 1500Z
    r"|(?P<comma>\d,\d{3})(?![.,:]?\d)"  # 1,500
    r"|(?P<hundred_h>\d{1,2})\s+hundred\b"  # 15 hundred
    r"|(?P<hour>\d{1,2})(?=\s?(?:[aApP]\.|[pP][mM]\b|AM\b|am\b)|\s+o'?\s?clock\b)"  # 3 p.m.
    r")", re.IGNORECASE)
_SPOKEN_TIME_RE = re.compile(
    rf"\b(?:(?P<zero>{_ZERO})[\s-]+(?P<zero_h>{_ONES}|{_ZERO})"  # oh six, zero zero
    rf"|(?P<words_h>twenty(?:[\s-]+(?:one|two|three))?|{_TEENS}|{_ONES}))"  # fifteen, six
    rf"(?:[\s-]+(?:(?P<hundred>hundred)"  # ... hundred
    rf"|(?P<words_m>(?:twenty|thirty|forty|fifty)(?:[\s-]+(?:{_ONES}))?|{_TEENS}"
    rf"|(?:{_ZERO})[\s-]+(?:{_ONES})))"  # ... forty-five, ... oh five
    rf"|(?=\s+o'?\s?clock\b|\s?(?:[ap]\.|pm\b)))\b", re.IGNORECASE)  # three o'clock, three p.m.
_DIGIT_WORDS_TIME_RE = re.compile(  # zero six four five
    rf"\b(?:{_ZERO}|one|two)[\s-]+(?:{_ZERO}|{_ONES}|niner)[\s-]+(?:{_ZERO}|one|two|three|four"
    rf"|five)[\s-]+(?:{_ZERO}|{_ONES}|niner)\b", re.IGNORECASE)
_SPOKEN_VALUES = {word: value for value, word in enumerate(
    ["zero", *_ONES.split("|"), *_TEENS.split("|")])} | {
    "oh": 0, "o": 0, "niner": 9, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}


def _digits(text: str) -> str:
    """The digits ``text`` says, figures and digit words alike ("4 nine-3" -> "493")."""
    out = []
    for token in re.findall(r"\d+|[a-z]+", text.lower()):
        out.append(token if token.isdigit() else _DIGITS.get(token, ""))
    return "".join(out)


def mission_texts(mission: Mission) -> list[str]:
    """What the mission says, as text: its file (all but the scripted operator lines, whose
    words the operator has yet to say) and its notes. Raises ``OSError`` if a note is gone."""
    from twin.prompt import read_notes

    notes = [text for _, text in read_notes(mission.knowledge)]
    return [mission.model_dump_json(exclude={"script"}), *notes]


@dataclass
class MissionValues:
    """The grids, frequencies, callsigns and times of one mission, as its texts write them."""

    grids: dict[str, str] = field(default_factory=dict)  # digits -> as written
    grid_halves: set[int] = field(default_factory=set)  # digits in each half of a grid
    frequencies: dict[str, str] = field(default_factory=dict)  # "46.9" -> "46.900"
    callsigns: dict[str, set[str]] = field(default_factory=dict)  # "BULLDOG" -> {"2", "0A"}
    times: set[str] = field(default_factory=set)  # "0645", "1500"
    numbers: set[str] = field(default_factory=set)  # every figure the texts hold: "748", "0.9"

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> MissionValues:
        """From the mission's texts (its file as text, its notes)."""
        values = cls()
        for text in texts:
            grid_spans = []
            for grid in _GRID_RE.finditer(text):
                zone, square, east, north = grid.groups()
                if len(east) != len(north):
                    continue  # halves of unequal length: not a grid
                written = " ".join(part for part in (zone, square, east, north) if part)
                values.grids.setdefault(east + north, written)
                values.grid_halves.add(len(east))
                grid_spans.append(grid.span())
            values.times |= _mission_times(text, grid_spans)
            values.numbers.update(numbers(text))
            for whole, fraction in _FREQUENCY_RE.findall(text):
                values.frequencies.setdefault(_frequency_key(whole, fraction),
                                              f"{whole}.{fraction}")
            for name, number in _CALLSIGN_RE.findall(text):
                values.callsigns.setdefault(name, set()).add(number)
        return values

    @classmethod
    def from_mission(cls, mission: Mission) -> MissionValues:
        """From the mission file (all but its scripted operator lines) and its notes."""
        return cls.from_texts(mission_texts(mission))

    def find(self, text: str, words: Sequence[Word] = ()) -> list[Entity]:
        """The values ``text`` says, in order, none overlapping: frequencies, then grids, then
        times, then callsigns. ``words`` (the recogniser's, in order) give each its
        confidence."""
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
                start, written = _grid_with_letters(text, match.start(), known,
                                                    f"{digits[:half]} {digits[half:]}")
                found.append(self._entity("grid", written, text, start, match.end(), words,
                                          known is not None))
        for start, end, time in self._times(text):
            if free(start, end):
                found.append(self._entity("time", time, text, start, end, words,
                                          time in self.times))
        for entity in self._callsigns(text, words, free):
            if free(entity.start, entity.end):
                found.append(entity)
        for start, end, number in _numbers(text):
            if free(start, end):
                found.append(self._entity("number", number, text, start, end, words,
                                          number in self.numbers))
        return sorted(found, key=lambda e: e.start)

    def _callsigns(self, text: str, words: Sequence[Word],
                   free: Callable[[int, int], bool]) -> list[Entity]:
        """A callsign's name heard as one or two words like it, then its number (and its
        letter, where the mission's callsigns of that name have one and ``free`` says no other
        value took that word: "Victor" of "BULLDOG 0 Victor Mike 4930 7102" is the grid's)."""
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
                end = number_token.end()
                letter = self._callsign_letter(text, end, name) if number.isdigit() else None
                if letter is not None and free(end, letter[1]):
                    number, end = number + letter[0], letter[1]
                found.append(self._entity("callsign", f"{name} {number}", text, token.start(),
                                          end, words, number in self.callsigns[name]))
                break
        return found

    def _callsign_letter(self, text: str, end: int, name: str) -> tuple[str, int] | None:
        """The letter said just after a callsign's number (which ends at ``end``): "alpha" in
        "BULLDOG zero alpha", and where it ends. Only where the mission writes callsigns of
        ``name`` with a letter, and not one of its callsign names with a number after it
        ("HOTEL 1 INDIA 1": INDIA is a callsign)."""
        if not any(number[-1].isalpha() for number in self.callsigns[name]):
            return None
        said = _PHONETIC_AFTER_RE.match(text, end)
        if said is None:
            return None
        word = said.group(1)
        after = _WORD_AFTER_RE.match(text, said.end())
        if (word.upper() in self.callsigns and after is not None
                and _callsign_number(after.group(1)) is not None):
            return None
        return _phonetic_letter(word), said.end()

    def _times(self, text: str) -> list[tuple[int, int, str]]:
        """The times ``text`` says: where each is and its four figures ("1500"), in order, none
        overlapping. Only those something says are times (see the module's docstring)."""
        found: list[tuple[int, int, str]] = []
        for clock in sorted(_clocks(text), key=lambda c: (c.start, -c.end)):
            if any(clock.start < end and clock.end > start for start, end, _ in found):
                continue
            said = self._time(text, clock)
            if said is not None:
                found.append(said)
        return found

    def _time(self, text: str, clock: _Clock) -> tuple[int, int, str] | None:
        """``clock`` as a time of the mission, where it is and its four figures; ``None`` where
        nothing says it is a time."""
        end = clock.end
        if _UNIT_AFTER_RE.match(text, end) or _NUMBER_AFTER_RE.match(text, end) \
                or _NUMBER_BEFORE_RE.search(text, 0, clock.start):
            return None  # a distance, an amount, or part of a longer run of figures
        hour, minute = clock.hour, clock.minute
        ampm = _AMPM_AFTER_RE.match(text, end)
        oclock = _OCLOCK_AFTER_RE.match(text, end)
        if ampm is not None:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if next(g for g in ampm.groups() if g) in "pP" else 0)
            end = ampm.end()
        elif oclock is not None:
            end = oclock.end()
        elif clock.form == "hour":
            return None  # "3" is a time only with "p.m." or "o'clock" after it
        if hour > 23 or minute > 59:
            return None
        literal = f"{hour:02d}{minute:02d}"
        if (ampm is None and not clock.zero and 1 <= hour <= 11
                and clock.form in ("colon", "dot", "words", "hour")
                and literal not in self.times and f"{hour + 12:02d}{minute:02d}" in self.times):
            literal = f"{hour + 12:02d}{minute:02d}"  # "six forty-five" for the mission's 1845
        held = literal in self.times
        time_word = _TIME_WORD_AFTER_RE.match(text, end) is not None
        if held or time_word or ampm is not None or oclock is not None:
            return clock.start, end, literal
        if clock.form == "hundred" and hour < 10 and not clock.zero:
            return None  # "two hundred" is an amount unless "hours" or the mission says it
        if (hour in (19, 20) and clock.form in ("figures", "comma", "words", "digits")
                and not _AT_BEFORE_RE.search(text, 0, clock.start)):
            return None  # "since 2019", "by twenty twenty": a year, unless "at" or "hours"
        cued = _CUE_BEFORE_RE.search(text, 0, clock.start) is not None
        plain = clock.form == "colon" or (clock.zero and clock.form != "digits")
        return (clock.start, end, literal) if cued or plain else None

    @staticmethod
    def _entity(kind: str, value: str, text: str, start: int, end: int,
                words: Sequence[Word], known: bool) -> Entity:
        return Entity(kind=kind, text=value, heard=text[start:end], start=start, end=end,
                      confidence=_confidence(text, start, end, words), known=known)


@dataclass(frozen=True)
class _Clock:
    """Something in a transcript shaped like a time of day, before deciding it is one."""

    start: int
    end: int
    hour: int
    minute: int
    # how it is written: "figures" (1500), "colon" (15:00), "dot" (15.00), "comma" (1,500),
    # "hundred" (15 hundred, fifteen hundred), "words" (twelve fifty-two), "digits" (zero six
    # four five), "hour" (the 3 of "3 p.m.")
    form: str
    zero: bool = False  # with a leading zero: a 24-hour time ("0645", "oh six hundred")


def _clocks(text: str) -> list[_Clock]:
    """Every span of ``text`` shaped like a time of day, in figures or in words."""
    clocks = []
    for match in _FIGURE_TIME_RE.finditer(text):
        start, end = match.span()
        group = match.lastgroup
        if group in ("colon_h", "colon_m"):
            hour, minute, form = match["colon_h"], match["colon_m"], "colon"
        elif group in ("dot_h", "dot_m"):
            hour, minute, form = match["dot_h"], match["dot_m"], "dot"
        elif group == "figures":
            hour, minute, form = match["figures"][:2], match["figures"][2:], "figures"
        elif group == "comma":
            figures = match["comma"].replace(",", "")
            hour, minute, form = figures[:2], figures[2:], "comma"
        elif group == "hundred_h":
            hour, minute, form = match["hundred_h"], "00", "hundred"
        else:
            hour, minute, form = match["hour"], "00", "hour"
        clocks.append(_Clock(start, end, int(hour), int(minute), form, hour.startswith("0")))
    for match in _SPOKEN_TIME_RE.finditer(text):
        hour_words = match["zero_h"] or match["words_h"]
        minute_words = match["words_m"]
        form = "hundred" if match["hundred"] else "words" if minute_words else "hour"
        clocks.append(_Clock(match.start(), match.end(), _spoken_value(hour_words),
                             _spoken_value(minute_words) if minute_words else 0, form,
                             match["zero"] is not None))
    for match in _DIGIT_WORDS_TIME_RE.finditer(text):
        figures = _digits(match.group(0))
        clocks.append(_Clock(match.start(), match.end(), int(figures[:2]), int(figures[2:]),
                             "digits", figures.startswith("0")))
    return clocks


def _spoken_value(words: str) -> int:
    """The number of a few number words: "twenty-one" 21, "forty five" 45, "oh five" 5."""
    return sum(_SPOKEN_VALUES[word] for word in re.findall(r"[a-z]+", words.lower()))


def _mission_times(text: str, grid_spans: Sequence[tuple[int, int]]) -> set[str]:
    """The times one of the mission's texts writes: four figures 0000-2359 with a time cue
    before ("at 1252", "by 1130", "about 0850"), a time word after ("1500 local", "1405 GMT"),
    in a range ("1100 to 1500", "0900-1300") or with a leading zero ("HALDEN 0645"), not in a
    grid nor a year ("since 2019": 19xx and 20xx only with a time word after or "at" before)."""
    times = set()
    ranges: dict[int, str] = {}  # where a range's times start -> what ends the range
    for match in _MISSION_RANGE_RE.finditer(text):
        ranges[match.start(1)] = ranges[match.start(2)] = text[match.end():]
    for match in _MISSION_TIME_RE.finditer(text):
        start, end = match.span()
        if any(s <= start < e for s, e in grid_spans):
            continue
        figures = match.group(0)
        time_word = _TIME_WORD_AFTER_RE.match(text, end) is not None or (
            start in ranges and _TIME_WORD_AFTER_RE.match(ranges[start]) is not None)
        if _UNIT_AFTER_RE.match(text, end) and not time_word:
            continue
        if figures[:2] in ("19", "20") and not (time_word or _AT_BEFORE_RE.search(text, 0, start)):
            continue  # a year, unless a time word or "at" says otherwise
        if (time_word or start in ranges or figures.startswith("0")
                or _MISSION_CUE_BEFORE_RE.search(text, 0, start)):
            times.add(figures)
    return times


def _grid_with_letters(text: str, start: int, known: str | None, shape: str) -> tuple[int, str]:
    """A grid whose figures start at ``start``, with the zone and square letters said just
    before them ("Victor Mike", "VM", "33 Tango VM"): where it starts and how it is written.
    A grid the mission holds (``known``, as written) takes in the letters only where they are
    its own; one it does not hold (``shape``: its figures) is written with the letters heard."""
    said = _GRID_LETTERS_RE.search(text, 0, start)
    if said is None:
        return start, known or shape
    square = said["square"] or _phonetic_letter(said["first"]) + _phonetic_letter(said["second"])
    zone = ""
    if said["zone_number"]:
        letter = said["zone_letter"]
        zone = _digits(said["zone_number"]) + (letter if len(letter) == 1
                                               else _phonetic_letter(letter))
    square_start = said.start("square") if said["square"] else said.start("first")
    if known is None:
        return said.start(), " ".join(part for part in (zone, square, shape) if part)
    written = _WRITTEN_GRID_RE.match(known)
    written_zone, written_square = written.groups() if written else (None, None)
    if square != written_square:
        return start, known
    return (said.start() if zone and zone == written_zone else square_start), known


def _phonetic_letter(word: str) -> str:
    """The letter a word of the phonetic alphabet stands for ("X-ray" -> "X")."""
    return _PHONETIC[re.sub(r"[\s-]", "", word.lower())]


def _numbers(text: str) -> list[tuple[int, int, str]]:
    """The other numbers ``text`` says, in figures: "seven four eight" -> 748, "nought point
    nine" -> 0.9, "1,500" -> 1500. A lone "one" that is a pronoun ("one of them", "the one")
    is none."""
    found = []
    for start, end, value in spelled_numbers(text):
        lone_one = text[start:end].lower() == "one"
        if " " in value or (lone_one and (_PRONOUN_AFTER_RE.match(text, end)
                                          or _PRONOUN_BEFORE_RE.search(text[:start]))):
            continue  # a grid's two halves (not one of the mission's), or "one of them"
        found.append((start, end, value))
    found += [(m.start(), m.end(), m.group(0).replace(",", "")) for m in _FIGURES_RE.finditer(text)]
    return sorted(found)


def _frequency_key(whole: str, fraction: str) -> str:
    """One spelling per frequency: "46.900" and "46.9" are one ("four six decimal nine")."""
    return f"{whole}.{fraction.rstrip('0')}"


def _likeness(heard: str, name: str) -> float:
    return SequenceMatcher(None, heard, name).ratio()


def _callsign_number(token: str) -> str | None:
    """A callsign's number as written: "2", "0A"; a digit word as its figure."""
    if re.fullmatch(r"\d{1,3}[A-Za-z]?", token):
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
    """``text`` with each entity's span written as the mission writes it; plain numbers stay
    as heard ("Last grid we had for two?": two is BULLDOG 2 there, and the mind reads spelled
    numbers itself)."""
    for entity in sorted(entities, key=lambda e: e.start, reverse=True):
        if entity.kind == "number":
            continue
        text = text[:entity.start] + entity.text + text[entity.end:]
    return text
