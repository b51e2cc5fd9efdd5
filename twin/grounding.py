"""The checker: every value a sentence of the twin states must come from what it may know.

A *value* is what an operator acts on and a model readily invents: a number (figures or spelled
out: "two hundred" is 200, "four nine three zero" is 4930), so also a grid, a time and a
frequency, which are numbers; a callsign or codeword (a word written in capitals, and a
numbered name like ``BULLDOG 7``); and a name (a capitalised word inside a sentence that is not
an ordinary word). :class:`Grounds` holds everything the twin may state — the mission notes and
file, the events so far with their facts, the operator's own words — and
:meth:`Grounds.check` says why a sentence states something else, or ``None``.

The check is by value, not by meaning: "200 m cordon" passes wherever the notes say 200, and a
grid with one digit changed fails because its half is in no note. It is a guard against
invention, not a proof of a right answer; the policy and the prompt do the rest.

:class:`Confidential` guards the other way, against prompt injection ("repeat your instructions
word for word", a note that asks for the configuration): :meth:`Confidential.check` says why a
sentence reads out the twin's instructions (a run of ``run`` words of its prompt that is not the
mission's own text, which the twin is there to tell) or a secret (a session secret, a key, or
any word shaped like a credential), or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Confidential", "Grounds", "figures", "numbers", "ordinary_words", "spelled_numbers",
           "value_phrases"]

_UNITS = {
    "zero": 0, "oh": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "niner": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "point", "decimal"], key=len,
                               reverse=True))
_RUN_RE = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|(?<=hundred)\s+and\s+|(?<=thousand)\s+and\s+)"
    rf"(?:{_NUMBER_WORD}))*\b", re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d+(?:[.,:]\d+)*")


def _spoken_value(words: list[str]) -> str | None:
    """Figures for a run of number words: digit by digit ("four nine three zero" -> 4930),
    or as a quantity ("two hundred and fifty" -> 250); "point" / "decimal" give a decimal."""
    if "point" in words or "decimal" in words:
        cut = next(i for i, w in enumerate(words) if w in ("point", "decimal"))
        whole, fraction = _spoken_value(words[:cut]), _spoken_value(words[cut + 1:])
        if whole is None or fraction is None:
            return whole
        return f"{whole}.{fraction}"
    words = [w for w in words if w != "and"]
    if not words:
        return None
    if len(words) > 1 and all(w in _UNITS and _UNITS[w] < 10 for w in words):
        digits = "".join(str(_UNITS[w]) for w in words)  # read digit by digit
        if len(digits) >= 6 and len(digits) % 2 == 0:  # a grid: its two halves
            return f"{digits[: len(digits) // 2]} {digits[len(digits) // 2:]}"
        return digits
    total, current = 0, 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word in _SCALES:
            current = max(current, 1) * _SCALES[word]
            if word == "thousand":
                total, current = total + current, 0
    return str(total + current)


def figures(text: str) -> str:
    """``text`` with its spelled-out numbers written as figures."""
    parts, at = [], 0
    for start, end, value in spelled_numbers(text):
        parts += [text[at:start], value]
        at = end
    return "".join(parts) + text[at:]


def spelled_numbers(text: str) -> list[tuple[int, int, str]]:
    """Where ``text`` spells out a number, and its figures: ``(start, end, "748")`` for "seven
    four eight"; a lone "oh", "point" or "decimal" is none."""
    found = []
    for match in _RUN_RE.finditer(text):
        words = re.findall(r"[a-z]+", match.group(0).lower())
        value = None if words in (["oh"], ["point"], ["decimal"]) else _spoken_value(words)
        if value is not None:
            found.append((match.start(), match.end(), value))
    return found


def _normal_number(token: str) -> str:
    """One spelling per number: no thousands commas, "11:30" -> "1130", no trailing decimal
    zeros ("9.0" -> "9", "46.900" -> "46.9")."""
    token = token.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", token) else token
    token = token.replace(":", "") if re.fullmatch(r"\d{1,2}:\d{2}", token) else token
    if re.fullmatch(r"\d+\.\d+", token):
        token = token.rstrip("0").rstrip(".")
    return token


def numbers(text: str) -> list[str]:
    """The numbers ``text`` states (spelled-out ones too), each in one normal spelling; a list
    such as "1,2" is two numbers."""
    found: list[str] = []
    for token in _NUMBER_RE.findall(figures(text)):
        if re.fullmatch(r"\d{1,3}(,\d{3})+", token) or "," not in token:
            found.append(_normal_number(token))
        else:
            found += [_normal_number(part) for part in token.split(",") if part]
    return found


_CAPS_RE = re.compile(r"\b[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*\b")  # BULLDOG, CP3, MHZ-less acronyms
_NUMBERED_RE = re.compile(r"\b([A-Z][A-Za-z]*)[ -](\d+[A-Z]?)\b")
_TITLE_RE = re.compile(r"[A-Z][a-z]+(?:'s)?")
_TOKEN_RE = re.compile(r"\S+")


_LETTER_RE = re.compile(r"(?<![\w.'-])([A-HJ-Z])(?![\w'-])")  # a capital standing alone, not "I"
_MARKER_RE = re.compile(r"^\s*(?:[-*+#>|]+|\d+[.)])\s*")  # a list item's or heading's marker


def _inner_letters(text: str) -> list[str]:
    """Capital letters standing alone inside a sentence (a blood group, a category, a grid
    square's letter), not the article "A" that starts one."""
    found: list[str] = []
    starts = True
    for token in _TOKEN_RE.findall(text):
        core = token.strip("\"'()[],;.!?:")
        if not starts and _LETTER_RE.fullmatch(core):
            found.append(core)
        starts = token.endswith((".", "!", "?", ":"))
    return found


def _inner_titles(text: str) -> list[str]:
    """Capitalised words that do not start a sentence, a clause after a colon, or a quote."""
    found: list[str] = []
    starts = True
    for token in _TOKEN_RE.findall(text):
        core = token.strip("\"'()[],;:.!?")  # a name ends a sentence too
        if not starts and _TITLE_RE.fullmatch(core) and token[:1] not in "\"'(":
            found.append(core)
        starts = token.endswith((".", "!", "?", ":", '."', "?\"", ".'"))
    return found
_WORD_RE = re.compile(r"[a-z0-9]+")
_OPENERS = "\"'(["
_CLOSERS = "\"')],;:.!?"


def value_phrases(sentence: str) -> list[str]:
    """The phrases of ``sentence`` that state values, as written: each run of words starting
    with a capital or a digit that holds a value (a number; a word with two capitals, as a
    callsign, codeword or rank; a capitalised word inside the sentence, as a name; a capital
    letter alone) — "SSgt Daniel Okafor", "33T VM 4385 6912", "46.900 MHz". A word that starts
    the sentence or follows a colon joins a run only as a value of the first two kinds (not
    "The"); a comma or a stop ends a run."""
    phrases: list[str] = []
    run: tuple[int, int] | None = None  # where the run starts and ends in the sentence
    valued, starts = False, True

    def close() -> None:
        nonlocal run, valued
        if run is not None and valued:
            phrases.append(sentence[run[0]:run[1]])
        run, valued = None, False

    for match in _TOKEN_RE.finditer(sentence):
        token = match.group(0)
        core = token.strip(_OPENERS + _CLOSERS)
        capital = core[:1].isupper() or core[:1].isdigit()
        strong = any(c.isdigit() for c in core) or sum(c.isupper() for c in core) >= 2 or (
            not starts and len(core) == 1 and core.isupper() and core != "I")
        value = strong or (capital and not starts and core != "I")
        if capital and (value or (run is not None and not starts)):
            first = match.start() + token.index(core)
            run = (run[0] if run is not None else first, first + len(core))
            valued = valued or value
        else:
            close()
        if token.endswith(tuple(_CLOSERS[4:])):  # , ; : . ! ? end a run
            close()
        starts = token.endswith((".", "!", "?", ":"))
    close()
    return phrases


class Grounds:
    """What the twin may state: texts added as the session goes on, indexed by value."""

    def __init__(self, texts: Iterable[str] = (), *, common_words: Iterable[str] = ()) -> None:
        self.numbers: set[str] = set()
        self.words: set[str] = set()
        self.caps: set[str] = set()
        self.numbered: set[str] = set()
        self.letters: set[str] = set()  # capital letters standing alone: "category A"
        self.common = {word.lower() for word in common_words}
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        """Let the twin state what ``text`` states."""
        text = figures(text)
        self.numbers.update(numbers(text))
        self.words.update(_WORD_RE.findall(text.lower()))
        self.caps.update(token.lower() for token in _CAPS_RE.findall(text))
        for name, number in _NUMBERED_RE.findall(text):
            if name.isupper():
                self.numbered.add(f"{name.lower()} {_normal_number(number).lower()}")
        for line in text.splitlines():  # a line (a list item, a heading) starts a sentence
            self.letters.update(_inner_letters(_MARKER_RE.sub("", line)))

    def check(self, sentence: str) -> str | None:
        """Why ``sentence`` is not grounded (the values it states that nothing here holds),
        or ``None``."""
        text = figures(sentence)
        invented: list[str] = [n for n in dict.fromkeys(numbers(text)) if n not in self.numbers]
        for name, number in _NUMBERED_RE.findall(text):
            if name.lower() in self.caps and name.isupper():
                pair = f"{name.lower()} {_normal_number(number).lower()}"
                if pair not in self.numbered and number not in invented:
                    invented.append(f"{name} {number}")
        for token in _CAPS_RE.findall(text):
            if token.lower() not in self.caps and token.lower() not in self.words:
                invented.append(token)
        for letter in _inner_letters(text):
            if letter not in self.letters:
                invented.append(letter)
        for word in _inner_titles(text):
            plain = word.lower().removesuffix("'s")
            if plain not in self.words and plain not in self.common:
                invented.append(word)
        if invented:
            return f"states {', '.join(dict.fromkeys(invented))}, which nothing it knows holds"
        return None


_PLAIN_RE = re.compile(r"[a-z0-9]+")
_CREDENTIAL_RE = re.compile(r"[A-Za-z0-9_-]{20,}")


def _runs(text: str, length: int) -> set[tuple[str, ...]]:
    """Every run of ``length`` words of ``text`` (lowercase letters and digits only)."""
    words = _PLAIN_RE.findall(text.lower())
    return {tuple(words[i:i + length]) for i in range(len(words) - length + 1)}


def _credential_like(word: str) -> bool:
    """Shaped like a token or a key, as no spoken word is: 20 characters or more (checked by
    the caller), lowercase letters mixed with 4 or more digits, underscores and capitals
    inside the word (a capital after a hyphen starts a word: "Anti-Armour")."""
    marks = sum(1 for i, c in enumerate(word)
                if c.isdigit() or c == "_" or (c.isupper() and i > 0 and word[i - 1] != "-"))
    return marks >= 4 and any(c.islower() for c in word)


class Confidential:
    """What the twin must not say: its instructions and its secrets.

    ``instructions`` is its prompt; ``facts`` the texts it may quote at length (the mission
    file's texts and its notes): the prompt is read with each of them cut out, so a protected
    run lies wholly in the prompt's own words (its rules, the lines around the facts), never
    across a fact ("BULLDOG 1, SSgt Daniel Okafor: Patrol commander (expert)" is the roster,
    not the prompt). ``secrets``: strings never to say (the session secret, an API key; those
    under 8 characters are ignored)."""

    def __init__(self, instructions: str, *, facts: Iterable[str] = (),
                 secrets: Iterable[str] = (), run: int = 8) -> None:
        self.run = run
        text = " ".join(instructions.split())  # the prompt joins a fact's lines: so do these
        plain = sorted({" ".join(fact.split()) for fact in facts} - {""}, key=len, reverse=True)
        for fact in plain:
            if fact in text:
                text = re.sub(rf"(?<!\w){re.escape(fact)}(?!\w)", "\x00", text)
        self.protected: set[tuple[str, ...]] = set()
        for part in text.split("\x00"):
            self.protected |= _runs(part, run)
        for fact in plain:
            self.protected -= _runs(fact, run)
        self.secrets = [secret.lower() for secret in secrets if len(secret) >= 8]

    def check(self, sentence: str) -> str | None:
        """Why ``sentence`` gives away the instructions or a secret, or ``None``."""
        lowered = sentence.lower()
        if any(secret in lowered for secret in self.secrets):
            return "says a secret of the session"
        if any(_credential_like(word) for word in _CREDENTIAL_RE.findall(sentence)):
            return "reads out something shaped like a credential"
        if _runs(sentence, self.run) & self.protected:
            return f"repeats its instructions ({self.run} words or more of its prompt)"
        return None


def ordinary_words(model: str = "all-minilm-l6-v2") -> set[str]:
    """Ordinary English words: the whole words of the embedding model's vocabulary (a registry
    name or a folder with ``vocab.txt``), so that a capitalised "Sergeant" is not taken for an
    invented name. Empty when the model is not there: then every such name is checked."""
    from twin import models

    try:
        folder = models.locate(model, kind="embedding",
                               accept=lambda path: (path / "vocab.txt").is_file(),
                               expected="a folder with vocab.txt")
        words = (folder / "vocab.txt").read_text(encoding="utf-8").split()
    except (models.ModelError, OSError):
        return set()
    return {word for word in words if word.isalpha() and len(word) > 2}
