"""Word error rate of a transcript against a reference, with a small text normaliser.

``normalize_words`` makes a recogniser's written style and a reference's spoken style compare:
lowercase; hyphens and dashes become spaces; other punctuation (apostrophes included) goes;
whole numbers 0-99 become words ("10" -> "ten", "42" -> "forty two"); and the titles "mr",
"mrs" and "dr" are spelled out ("mister", "missus", "doctor"), as read-aloud references have them.

``word_errors`` aligns the two word sequences (Levenshtein over words) and counts substitutions,
deletions and insertions; ``word_error_rate`` is their sum over the reference's word count. To
pool several utterances, add up their ``WordErrors`` and take ``rate`` of the sum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
_DASHES = re.compile(r"[-\u2010-\u2015]")
_NOT_WORD = re.compile(r"[^\w\s]")


def number_words(n: int) -> str:
    """``n`` (0-99) spelled out: 7 -> "seven", 42 -> "forty two"."""
    if not 0 <= n <= 99:
        raise ValueError(f"number_words spells 0-99, got {n}")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")


def normalize_words(text: str) -> list[str]:
    """The words of ``text`` after normalisation (see the module docstring)."""
    text = _NOT_WORD.sub("", _DASHES.sub(" ", text.lower())).replace("_", " ")
    words: list[str] = []
    for word in text.split():
        if word.isdecimal() and int(word) <= 99:
            words.extend(number_words(int(word)).split())
        else:
            words.append(_TITLES.get(word, word))
    return words


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of a hypothesis against a reference of ``words`` words."""

    substitutions: int
    deletions: int
    insertions: int
    words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        if self.words == 0:
            raise ValueError("word error rate of an empty reference is undefined")
        return self.errors / self.words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(self.substitutions + other.substitutions,
                          self.deletions + other.deletions,
                          self.insertions + other.insertions, self.words + other.words)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Substitutions, deletions and insertions that turn ``reference`` into ``hypothesis``
    (both normalised), fewest edits first, then fewest substitutions."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    # each cell: (edits, substitutions, deletions, insertions) for ref[:i] -> hyp[:j]
    previous = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        current = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            diagonal = previous[j - 1]
            if ref[i - 1] == hyp[j - 1]:
                match = diagonal
            else:
                match = (diagonal[0] + 1, diagonal[1] + 1, diagonal[2], diagonal[3])
            up, left = previous[j], current[j - 1]
            delete = (up[0] + 1, up[1], up[2] + 1, up[3])
            insert = (left[0] + 1, left[1], left[2], left[3] + 1)
            current.append(min(match, delete, insert))
        previous = current
    _, substitutions, deletions, insertions = previous[-1]
    return WordErrors(substitutions, deletions, insertions, len(ref))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalisation.

    ``ValueError`` if the reference has no words (the rate would be undefined)."""
    errors = word_errors(reference, hypothesis)
    if errors.words == 0:
        raise ValueError(f"the reference {reference!r} has no words: word error rate is "
                         "undefined")
    return errors.rate
