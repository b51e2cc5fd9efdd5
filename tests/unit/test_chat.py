"""The chat module's sentence splitter (what the voice gets, and when) and its record of how sure
the model was of each token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from actors.chat import TokenOdds, plain_speech, split_sentences

pytestmark = pytest.mark.unit


def sentences_of(text: str, *, chunk: int = 3, **options: int) -> list[tuple[str, int]]:
    """The sentences of ``text`` streamed ``chunk`` characters at a time, each with how much
    of the text had streamed when it came out."""
    streamed = 0

    async def chunks() -> AsyncIterator[str]:
        nonlocal streamed
        for start in range(0, len(text), chunk):
            streamed = start + chunk
            yield text[start:start + chunk]

    async def collect() -> list[tuple[str, int]]:
        return [(sentence, min(streamed, len(text)))
                async for sentence in split_sentences(chunks(), **options)]

    return asyncio.run(collect())


def test_each_sentence_as_soon_as_the_next_begins() -> None:
    text = "Troop net is 44.175 MHz. Alternate 46.900 MHz. Relay through BULLDOG 4."
    got = sentences_of(text)
    assert [s for s, _ in got] == ["Troop net is 44.175 MHz.", "Alternate 46.900 MHz.",
                                   "Relay through BULLDOG 4."]
    assert got[0][1] < len(text)  # before the end of the stream
    assert [s for s, _ in sentences_of("Yes. It is.")] == ["Yes. It is."]  # too short to cut


def test_a_long_sentence_goes_out_in_parts_at_its_clauses() -> None:
    listing = ("The route status holds the route name; from and to; the time cleared; the "
               "finds with number, grid and status; the restrictions; the weather; the window; "
               "and the codeword.")
    parts = [s for s, _ in sentences_of(listing)]
    assert len(parts) > 1 and " ".join(parts) == listing
    assert all(len(part) <= 120 + 3 for part in parts)  # cut once past the limit
    assert parts[0].endswith(";")
    commas = ("If the convoy goes past the window, the culverts must be proved again, which "
              "takes the search team about an hour, so the convoy waits at the start point.")
    assert sentences_of(commas)[0][0].endswith(",")
    # the reply's first sentence is cut sooner (past 60 characters), so the voice can begin
    opening = ("The fuel state across the package is 68 percent at 0630 local, with a planned "
               "use of 62 litres at the release point.")
    assert [s for s, _ in sentences_of(opening)] == [
        "The fuel state across the package is 68 percent at 0630 local,",
        "with a planned use of 62 litres at the release point."]
    assert [s for s, _ in sentences_of("Fuel is fine. " + opening)] == ["Fuel is fine.", opening]
    # no clause to cut at: the sentence waits for its end
    plain = "word " * 40
    assert [s for s, _ in sentences_of(plain)] == [plain.strip()]


def test_list_markers_and_emphasis_are_not_read_out() -> None:
    assert plain_speech("Options:\n1. Try the alternate 46.900 MHz.") == (
        "Options: Try the alternate 46.900 MHz.")
    assert plain_speech("- **Halt.** Do not move.") == "Halt. Do not move."
    assert plain_speech("## Drill") == "Drill"
    assert plain_speech("1.") == ""
    # what is not markup stays: figures, a range, a negative, a grid
    kept = "Fuel is 43% at km 8.0-10.0, about -5 C; grid 33T VM 4930 7102."
    assert plain_speech(kept) == kept


def test_token_odds_keep_the_probability_of_each_token_chosen() -> None:
    """Driven as llama.cpp drives a logits processor: the scores before each token, then the
    input with the chosen token appended. A vocabulary of four pieces."""
    vocabulary = [" Lt", " Maya", " Hale", "."]
    odds = TokenOdds(lambda ids: "".join(vocabulary[i] for i in ids).encode())
    steps = [np.log(np.array(p, dtype=np.float32)) for p in
             ([0.45, 0.25, 0.2, 0.1], [0.01, 0.97, 0.01, 0.01], [0.02, 0.02, 0.95, 0.01])]
    written: list[int] = [7, 7]  # the prompt
    for scores in steps:
        assert odds(np.array(written), scores) is scores  # the scores are left as they are
        written.append(int(np.argmax(scores)))
    odds(np.array(written), np.zeros(4, dtype=np.float32))
    assert [piece for piece, _ in odds.tokens] == [" Lt", " Maya", " Hale"]
    assert odds.least("Maya Hale") == pytest.approx(0.95, abs=1e-3)
    assert odds.least("Lt Maya") == pytest.approx(0.45, abs=1e-3)
    assert odds.least("Okafor") is None  # not written
    guesses = odds.guesses(["Maya Hale", "Lt Maya Hale", "Okafor"], 0.5)
    assert [phrase for phrase, _ in guesses] == ["Lt Maya Hale"]
    assert guesses[0][1] == pytest.approx(0.45, abs=1e-3)
    assert odds.guesses(["Lt Maya Hale"], 0.5, given="Is it Lt Maya Hale?") == []  # asked
